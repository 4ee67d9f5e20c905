"""Ingest new or changed S3 objects (CSV, JSON lines, Parquet) into a lake dataset, exactly once.

What has been ingested is tracked by key *and ETag* in ``_state/s3.json`` (timestamps
alone miss an object overwritten within the same second, and re-uploads of the same
bytes keep their ETag). A run:

1. lists ``bucket/prefix``, keeps keys matching the glob that are new, or changed when
   the policy is ``reingest``; the run key is a hash of those (key, ETag) pairs;
2. streams each object into bounded Parquet files under ``_staging/<run key>/``
   (CSV and JSON lines in blocks, Parquet by row group: a multi-GB object is never
   read into memory); an object that cannot be read or does not fit the schema is
   quarantined with the reason and the others proceed;
3. moves the files to ``data/run=<run key>/...``, writes the manifest, then replaces
   ``_state/s3.json`` (the commit point). Readers take the current files of every key
   from the state, so a changed object's new version replaces the old one.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mlops_ops._extras import require
from mlops_ops.lake.parquet_files import ClosedFile, RollingParquetWriter, arrow_schema
from mlops_ops.lake.readahead import read_ahead
from mlops_ops.lake.store import Dataset

log = logging.getLogger(__name__)

STATE_FILE = "s3.json"
S3Format = Literal["csv", "jsonl", "parquet"]
# Text formats are parsed in 1 MiB blocks (pyarrow's default): larger blocks bought no speed and
# raised resident memory (pyarrow reads several blocks ahead). Parquet is read by ranged GETs.
BLOCK_SIZE = 1 << 20
RANGE_SIZE = 8 << 20


@dataclass(frozen=True)
class S3BatchSettings:
    bucket: str
    prefix: str = ""
    glob: str = "*"
    format: S3Format = "csv"
    schema: Mapping[str, str] | None = None
    on_change: Literal["reingest", "ignore"] = "reingest"
    rows_per_file: int = 1_000_000


@dataclass(frozen=True)
class S3Object:
    key: str
    etag: str
    size: int


@dataclass
class S3IngestResult:
    manifest_uri: str | None
    rows: int
    objects: list[str] = field(default_factory=list)
    quarantined: list[dict[str, str]] = field(default_factory=list)


def select_objects(
    listing: list[S3Object], state: Mapping[str, Any], settings: S3BatchSettings
) -> tuple[list[S3Object], list[str]]:
    """Objects to ingest this run, and the changed keys skipped by an ``ignore`` policy."""
    known: Mapping[str, Any] = state.get("objects", {})
    chosen, skipped = [], []
    for obj in sorted(listing, key=lambda o: o.key):
        relative = obj.key[len(settings.prefix) :].lstrip("/")
        if not fnmatch.fnmatch(relative, settings.glob) or obj.key.endswith("/"):
            continue
        seen = known.get(obj.key)
        if seen is None:
            chosen.append(obj)
        elif seen["etag"] != obj.etag:
            if settings.on_change == "reingest":
                chosen.append(obj)
            else:
                skipped.append(obj)
    return chosen, [o.key for o in skipped]


class S3BatchIngest:
    """One run over the objects of ``settings.bucket/prefix``; ``client`` is a boto3 S3 client."""

    def __init__(self, client: Any, source_fs_path: Any, dataset: Dataset, settings: S3BatchSettings) -> None:
        self.client = client
        self.source = source_fs_path  # ObjectStoragePath of s3://bucket (same connection)
        self.dataset = dataset
        self.settings = settings

    def _list(self) -> list[S3Object]:
        paginator = self.client.get_paginator("list_objects_v2")
        out = []
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=self.settings.prefix):
            for item in page.get("Contents", []):
                out.append(S3Object(item["Key"], item["ETag"].strip('"'), int(item["Size"])))
        return out

    def run(self) -> S3IngestResult:
        state = self.dataset.read_json("_state", STATE_FILE) or {"objects": {}, "manifests": []}
        chosen, skipped = select_objects(self._list(), state, self.settings)
        for key in skipped:
            log.info("object %s changed but on_change=ignore: not ingested again", key)
        if not chosen:
            return S3IngestResult(None, 0)
        run_key = "s3-" + hashlib.sha256("\n".join(f"{o.key}\0{o.etag}" for o in chosen).encode()).hexdigest()[:20]
        self.dataset.remove_tree("_staging", run_key)
        schema = arrow_schema(dict(self.settings.schema) if self.settings.schema else None, {})
        done: dict[str, tuple[S3Object, list[ClosedFile]]] = {}
        quarantined: list[dict[str, str]] = []
        for obj in chosen:
            staging = self.dataset.path("_staging", run_key, _object_dir(obj))
            writer = RollingParquetWriter(staging, rows_per_file=self.settings.rows_per_file)
            try:
                position = 0
                for batch in read_ahead(self._batches(obj, schema)):
                    writer.add_batch(batch, position, position + batch.num_rows - 1)
                    position += batch.num_rows
                done[obj.key] = (obj, writer.close())
            except Exception as err:  # noqa: BLE001 - any unreadable object is quarantined, not fatal
                _abandon(writer)
                self.dataset.remove_tree("_staging", run_key, _object_dir(obj))
                reason = self._explain(obj, err)
                log.warning("quarantined s3://%s/%s: %s", self.settings.bucket, obj.key, reason)
                quarantined.append({"key": obj.key, "etag": obj.etag, "reason": reason})
        objects_entry: dict[str, Any] = {}
        total = 0
        for key, (obj, files) in done.items():
            entries: list[dict[str, Any]] = []
            for f in files:
                name = f"{f.first:012d}-{f.last:012d}.parquet"
                final = self.dataset.publish(f.staged, "data", f"run={run_key}", _object_dir(obj), name)
                entries.append({"uri": str(final), "rows": f.rows, "sha256": f.sha256, "schema": f.schema})
            rows = sum(int(e["rows"]) for e in entries)
            total += rows
            objects_entry[key] = {"etag": obj.etag, "size": obj.size, "rows": rows, "files": entries}
        manifest = {
            "kind": "s3",
            "run_key": run_key,
            "created_at": datetime.now(UTC).isoformat(),
            "source": f"s3://{self.settings.bucket}/{self.settings.prefix}",
            "rows": total,
            "objects": objects_entry,
            "quarantine": quarantined,
        }
        manifest_uri = self.dataset.uri("manifests", f"{run_key}.json")
        self.dataset.write_json(manifest, "manifests", f"{run_key}.json")
        for key, entry in objects_entry.items():
            state["objects"][key] = {**entry, "manifest": manifest_uri}
        for q in quarantined:
            state["objects"][q["key"]] = {"etag": q["etag"], "quarantined": q["reason"], "files": [],
                                          "manifest": manifest_uri}  # fmt: skip
        if manifest_uri not in state["manifests"]:
            state["manifests"].append(manifest_uri)
        self.dataset.write_json(state, "_state", STATE_FILE)  # commit point
        self.dataset.remove_tree("_staging", run_key)
        return S3IngestResult(manifest_uri, total, sorted(objects_entry), quarantined)

    def _explain(self, obj: S3Object, err: Exception) -> str:
        """A one-line reason; Arrow's CSV errors name a column by index, so add its name from the header."""
        text = f"{type(err).__name__}: {err}".splitlines()[0]
        match = re.search(r"CSV column #(\d+)", text)
        if match and self.settings.format == "csv":
            try:
                with (self.source / obj.key).open("rb") as fh:
                    header = fh.read(65536).split(b"\n", 1)[0].decode("utf-8", "replace").strip().split(",")
                text += f" (column '{header[int(match.group(1))]}')"
            except (OSError, IndexError, ValueError):
                pass
        return text[:500]

    def _batches(self, obj: S3Object, schema: Any) -> Iterator[Any]:
        pa = require("pyarrow", "s3")
        fmt = self.settings.format
        # CSV and JSON lines are read front to back: one streaming GET. Parquet needs ranged reads.
        opened = (
            (self.source / obj.key).open("rb", block_size=RANGE_SIZE)
            if fmt == "parquet"
            else contextlib.closing(self.client.get_object(Bucket=self.settings.bucket, Key=obj.key)["Body"])
        )
        with opened as fh:
            if fmt == "parquet":
                pq = require("pyarrow.parquet", "s3")
                batches: Iterator[Any] = pq.ParquetFile(fh).iter_batches(batch_size=64_000)
            elif fmt == "csv":
                csv = require("pyarrow.csv", "s3")
                convert = csv.ConvertOptions(column_types=schema, strings_can_be_null=True)
                batches = iter(csv.open_csv(fh, read_options=csv.ReadOptions(block_size=BLOCK_SIZE),
                                            convert_options=convert))  # fmt: skip
            else:
                pj = require("pyarrow.json", "s3")
                parse = pj.ParseOptions(explicit_schema=schema) if schema is not None else None
                batches = iter(pj.open_json(fh, read_options=pj.ReadOptions(block_size=BLOCK_SIZE),
                                            parse_options=parse))  # fmt: skip
            for batch in batches:
                if schema is not None:
                    batch = _conform_batch(pa, batch, schema, obj.key)
                yield batch


def _conform_batch(pa: Any, batch: Any, schema: Any, key: str) -> Any:
    missing = [name for name in schema.names if name not in batch.schema.names]
    if missing:
        raise ValueError(f"{key}: missing column(s) {', '.join(missing)} required by the schema")
    return pa.RecordBatch.from_arrays([batch.column(name).cast(schema.field(name).type) for name in schema.names],
                                      schema=schema)  # fmt: skip


def _object_dir(obj: S3Object) -> str:
    return "object=" + hashlib.sha256(f"{obj.key}\0{obj.etag}".encode()).hexdigest()[:16]


def _abandon(writer: RollingParquetWriter) -> None:
    try:
        writer.close()
    except Exception:  # noqa: BLE001, S110 - the object is being quarantined anyway
        pass
