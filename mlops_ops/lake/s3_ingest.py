"""Stage new or changed S3 objects (CSV, JSON lines, Parquet) into the pipeline's ``raw`` table, exactly once.

What has been ingested is tracked by key *and ETag* (timestamps alone miss an object overwritten within the
same second; re-uploads of the same bytes keep their ETag). The state is a JSON document written once per
batch next to the table's metadata and named by the ``mlops.cursor.s3`` property of ``raw``'s snapshot
summary, so it changes in the same commit as the rows. A run:

1. hands on a batch still staged on ``raw@audit_s3`` (nothing new is read until it is decided);
2. lists ``bucket/prefix``, keeps keys matching the glob that are new, or changed when the policy is
   ``reingest``; the batch id is a hash of those (key, ETag) pairs;
3. streams each object into bounded Parquet files in the table's data folder (CSV and JSON lines in blocks,
   Parquet by row group: a multi-GB object is never held in memory). Transient errors (network, S3 5xx,
   throttling) are retried with backoff and then fail the run with nothing recorded; only an object whose
   *content* cannot be read (corrupt Parquet, a value that is not a number, a missing column) goes to the
   dead-letter table with the reason, and is tried again only when its ETag changes;
4. stages the batch in one commit: the new files, minus the files of the objects' earlier versions (a
   changed object's new rows replace its old ones), plus the new state.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import io
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mlops_ops._extras import require
from mlops_ops.exceptions import IngestError
from mlops_ops.lake import transaction
from mlops_ops.lake.batches import DEAD_LETTER_FILES_KEY
from mlops_ops.lake.parquet_files import ClosedFile, RollingParquetWriter, table_opener
from mlops_ops.lake.readahead import read_ahead
from mlops_ops.lake.rewrite import OBJECT_KEY_COLUMN, files_without
from mlops_ops.lake.tables import DEAD_LETTER_COLUMNS, PipelineTables, arrow_schema, data_folder, raw_columns

log = logging.getLogger(__name__)

SOURCE = "s3"
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
    attempts: int = 4
    backoff_s: float = 1.0
    gated: bool = False  # a quality gate decides the batch (see transaction.claim)


@dataclass(frozen=True)
class S3Object:
    key: str
    etag: str
    size: int


@dataclass
class S3IngestResult:
    staged: transaction.StagedBatch | None
    rows: int
    objects: list[str] = field(default_factory=list)
    dead: list[dict[str, str]] = field(default_factory=list)
    resumed: bool = False


class ContentError(ValueError):
    """An object whose bytes cannot become rows (deterministic: reading it again gives the same error)."""


class ObjectGoneError(Exception):
    """An object deleted between the listing and its read."""


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
        seen = known.get(state_key(settings.bucket, obj.key))
        if seen is None:
            chosen.append(obj)
        elif seen["etag"] != obj.etag:
            if settings.on_change == "reingest":
                chosen.append(obj)
            else:
                skipped.append(obj)
    return chosen, [o.key for o in skipped]


def state_key(bucket: str, key: str) -> str:
    """Objects are known by bucket and key: a pipeline may read another bucket one day."""
    return f"s3://{bucket}/{key}"


def batch_objects(io: Any, staged: transaction.StagedBatch, limit: int = 100) -> list[dict[str, str]]:
    """``[{bucket, key, etag}]`` of the objects a batch ingested (its end cursor's state file), at most ``limit``."""
    objects = read_state(io, staged.end_cursor).get("objects", {})
    mine = [(key.removeprefix("s3://").partition("/"), o["etag"]) for key, o in sorted(objects.items())
            if o.get("batch") == staged.batch_id and o.get("files")]  # fmt: skip
    return [{"bucket": bucket, "key": key, "etag": etag} for (bucket, _, key), etag in mine[:limit]]


def read_state(io: Any, cursor: str) -> dict[str, Any]:
    """The ingested objects named by a cursor (``{}`` before the first batch)."""
    if not cursor:
        return {"objects": {}}
    with io.new_input(cursor).open() as fh:
        state: dict[str, Any] = json.loads(fh.read())
    return state


def list_objects(client: Any, bucket: str, prefix: str) -> list[S3Object]:
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out.append(S3Object(item["Key"], item["ETag"].strip('"'), int(item["Size"])))
    return out


def result_of(staged: transaction.StagedBatch, *, resumed: bool) -> S3IngestResult:
    s = staged.summary
    return S3IngestResult(
        staged,
        int(s.get("mlops.rows", 0)),
        json.loads(s.get("mlops.s3.objects", "[]")),
        json.loads(s.get("mlops.s3.dead", "[]")),
        resumed=resumed,
    )


class S3BatchIngest:
    """One run over the objects of ``settings.bucket/prefix``; ``client`` is a boto3 S3 client."""

    def __init__(self, client: Any, tables: PipelineTables, settings: S3BatchSettings) -> None:
        self.client = client
        self.tables = tables
        self.settings = settings

    def run(self) -> S3IngestResult:
        columns = raw_columns(self.settings.schema)
        raw = self.tables.raw(columns)
        staged, start_cursor = transaction.begin(raw, SOURCE, gated=self.settings.gated)
        if staged is not None:
            return result_of(staged, resumed=True)
        state = read_state(raw.io, start_cursor)
        listing = self._retrying(
            "listing", lambda: list_objects(self.client, self.settings.bucket, self.settings.prefix)
        )
        chosen, skipped = select_objects(listing, state, self.settings)
        for key in skipped:
            log.info("object %s changed but on_change=ignore: not ingested again", key)
        if not chosen:
            return S3IngestResult(None, 0)
        batch_id = "s3-" + hashlib.sha256("\n".join(f"{o.key}\0{o.etag}" for o in chosen).encode()).hexdigest()[:20]
        schema = arrow_schema(columns) if columns is not None else None
        opener = table_opener(raw.io)
        written: dict[str, tuple[S3Object, list[ClosedFile]]] = {}
        dead: list[dict[str, str]] = []
        inferred: Any = None  # schemaless: the column types of the objects taken so far in this batch
        for obj in chosen:
            try:
                closed, types = self._retrying(
                    f"reading s3://{self.settings.bucket}/{obj.key}",
                    lambda o=obj: self._write_object(raw, opener, o, schema, batch_id),
                )
                if schema is None:  # a column another object (or the table) has with a type it cannot take
                    inferred = self._take_types(raw, inferred, types, closed)
                written[obj.key] = (obj, closed)
            except ContentError as err:
                reason = str(err)[:500]
                log.warning("dead letter s3://%s/%s: %s", self.settings.bucket, obj.key, reason)
                dead.append({"key": obj.key, "etag": obj.etag, "reason": reason})
            except ObjectGoneError as err:  # deleted since the listing: nothing to ingest, nothing recorded
                log.warning("%s", err)
        objects = dict(state.get("objects", {}))
        bucket = self.settings.bucket
        changed = sorted(k for k in [*written, *(d["key"] for d in dead)] if state_key(bucket, k) in objects)
        for key, (obj, closed) in written.items():
            objects[state_key(bucket, key)] = {
                "etag": obj.etag,
                "size": obj.size,
                "rows": sum(f.rows for f in closed),
                "files": [f.path for f in closed],
                "batch": batch_id,
            }
        for d in dead:
            objects[state_key(bucket, d["key"])] = {
                "etag": d["etag"],
                "dead_letter": d["reason"],
                "files": [],
                "batch": batch_id,
            }
        dead_files = self._dead_letter_files(batch_id, dead)
        if columns is None and any(fs for _, fs in written.values()):  # objects without rows add no column
            from mlops_ops.lake.tables import evolve

            raw = evolve(raw, _union_schema([f for _, fs in written.values() for f in fs], raw))
        end_cursor = f"{raw.location().rstrip('/')}/metadata/mlops-s3-state-{batch_id}-{uuid.uuid4().hex[:8]}.json"
        with raw.io.new_output(end_cursor).create(overwrite=True) as fh:
            fh.write(json.dumps({"objects": objects, "batch": batch_id}, sort_keys=True).encode())
        replaced, kept = files_without(raw, OBJECT_KEY_COLUMN, changed, batch_id)
        rows = sum(f.rows for _, fs in written.values() for f in fs)
        props = {
            "mlops.rows": str(rows),
            "mlops.bad": str(len(dead)),
            "mlops.s3.objects": transaction.json_value(sorted(written)),
            "mlops.s3.dead": transaction.json_value(dead),
            "mlops.s3.replaced-objects": str(len(changed) if replaced else 0),
            "mlops.s3.source": f"s3://{self.settings.bucket}/{self.settings.prefix}",
            DEAD_LETTER_FILES_KEY: transaction.json_value(dead_files),
        }
        files = [f.path for _, fs in written.values() for f in fs] + kept
        staged = transaction.stage(
            raw,
            source=SOURCE,
            batch_id=batch_id,
            start_cursor=start_cursor,
            end_cursor=end_cursor,
            files=files,
            replaced=replaced,
            properties=props,
        )
        return S3IngestResult(staged, rows, sorted(written), dead)

    # ---------------------------------------------------------------- one object
    def _write_object(
        self, raw: Any, opener: Any, obj: S3Object, schema: Any, batch_id: str
    ) -> tuple[list[ClosedFile], Any]:
        """The object's rows as Parquet files of ``raw``'s location (not committed), and its columns' types."""
        pa = require("pyarrow", "lake")
        np = require("numpy", "lake")
        folder = data_folder(
            raw, batch_id, "object=" + hashlib.sha256(f"{obj.key}\0{obj.etag}".encode()).hexdigest()[:16]
        )
        writer = RollingParquetWriter(folder, opener, rows_per_file=self.settings.rows_per_file)
        types = None
        try:
            position = 0
            for batch in read_ahead(self._batches(obj, schema)):
                types = types or batch.schema
                n = batch.num_rows
                meta = {
                    "_source": pa.repeat(pa.scalar(SOURCE, pa.string()), n),
                    "_object_key": pa.repeat(pa.scalar(obj.key, pa.string()), n),
                    "_object_etag": pa.repeat(pa.scalar(obj.etag, pa.string()), n),
                    "_row": pa.array(np.arange(position, position + n, dtype=np.int64)),
                    "_batch": pa.repeat(pa.scalar(batch_id, pa.string()), n),
                }
                batch = _with_meta(pa, batch, meta, schema)
                writer.add_batch(batch, position, position + n - 1)
                position += n
            return writer.close(), types
        except BaseException as err:
            writer.abandon()
            kind = classify(err)
            if kind == "content":
                raise ContentError(self._explain(obj, err)) from err
            if kind == "gone":
                raise ObjectGoneError(f"s3://{self.settings.bucket}/{obj.key} was deleted after the listing: "
                                      "skipped, not recorded (ingested if it comes back)") from err  # fmt: skip
            raise

    def _take_types(self, raw: Any, inferred: Any, types: Any, closed: list[ClosedFile]) -> Any:
        """``inferred`` widened by an object's column ``types``; a ContentError (the object is a dead letter, its
        files removed) when the table or an earlier object of the batch has one of its columns with a type that
        cannot hold it (``10.5`` where integers were): one object must not block the others."""
        pa = require("pyarrow", "lake")
        from mlops_ops.lake.tables import type_problem

        problem = type_problem(raw, types) if types is not None else None
        merged = inferred
        if problem is None and types is not None:
            try:
                merged = types if inferred is None else pa.unify_schemas([inferred, types])
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                before = {f.name: f.type for f in inferred}
                clash = [f"'{f.name}' is {f.type} here, {before[f.name]} in an earlier object"
                         for f in types if f.name in before and before[f.name] != f.type]  # fmt: skip
                problem = f"column {'; column '.join(clash)} of this batch"
        if problem is None:
            return merged
        for f in closed:
            with contextlib.suppress(Exception):  # never committed, so never read: removing is tidiness
                raw.io.delete(f.path)
        raise ContentError(f"{problem}; give the source a schema, or write the column with one type")

    def _retrying(self, what: str, action: Any) -> Any:
        """Run ``action``; transient errors are retried with exponential backoff, then fail the run."""
        for attempt in range(1, self.settings.attempts + 1):
            try:
                return action()
            except Exception as err:
                if isinstance(err, ContentError | ObjectGoneError | IngestError):
                    raise
                kind = classify(err)
                if kind == "refused":  # a retry gets the same answer
                    raise IngestError(f"{what}: S3 refused it ({type(err).__name__}: {err}); check the connection's "
                                      "credentials and the bucket's policy. Nothing was recorded, a retry starts "
                                      "over") from err  # fmt: skip
                if kind != "transient":
                    raise
                if attempt == self.settings.attempts:
                    raise IngestError(
                        f"{what} failed {attempt} times with transient errors, last: "
                        f"{type(err).__name__}: {err}; nothing was recorded, a retry starts over"
                    ) from err
                wait = self.settings.backoff_s * 2 ** (attempt - 1)
                log.warning("%s failed (%s: %s); retrying in %.1f s", what, type(err).__name__, err, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def _dead_letter_files(self, batch_id: str, dead: list[dict[str, str]]) -> list[str]:
        if not dead:
            return []
        pa = require("pyarrow", "lake")
        pq = require("pyarrow.parquet", "lake")
        table = self.tables.dead_letters()
        now = datetime.now(UTC)
        rows = [
            {
                "_source": SOURCE,
                "_object_key": d["key"],
                "_object_etag": d["etag"],
                "error": d["reason"],
                "_batch": batch_id,
                "_at": now,
            }
            for d in dead
        ]
        path = data_folder(table, batch_id, f"{uuid.uuid4().hex}.parquet")
        with table.io.new_output(path).create(overwrite=True) as fh:
            pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(DEAD_LETTER_COLUMNS)), fh)
        return [path]

    def _explain(self, obj: S3Object, err: BaseException) -> str:
        """A one-line reason; Arrow's CSV errors name a column by index, so add its name from the header."""
        text = f"{type(err).__name__}: {err}".splitlines()[0]
        match = re.search(r"CSV column #(\d+)", text)
        if match and self.settings.format == "csv":
            try:
                head = self.client.get_object(Bucket=self.settings.bucket, Key=obj.key, Range="bytes=0-65535")
                header = head["Body"].read().split(b"\n", 1)[0].decode("utf-8", "replace").strip().split(",")
                text += f" (column '{header[int(match.group(1))]}')"
            except Exception:  # noqa: BLE001, S110 - the reason stands without the column name
                pass
        return text[:500]

    def _batches(self, obj: S3Object, schema: Any) -> Iterator[Any]:
        pa = require("pyarrow", "lake")
        fmt = self.settings.format
        spec_schema = _spec_part(pa, schema)
        if fmt == "parquet":
            pq = require("pyarrow.parquet", "lake")
            opened: Any = io.BufferedReader(RangedObject(self.client, self.settings.bucket, obj), RANGE_SIZE)
        else:
            # CSV and JSON lines are read front to back: one streaming GET.
            opened = contextlib.closing(self.client.get_object(Bucket=self.settings.bucket, Key=obj.key)["Body"])
        with opened as fh:
            if fmt == "parquet":
                batches: Iterator[Any] = pq.ParquetFile(fh).iter_batches(batch_size=64_000)
            elif fmt == "csv":
                csv = require("pyarrow.csv", "lake")
                convert = csv.ConvertOptions(column_types=spec_schema, strings_can_be_null=True)
                batches = iter(
                    csv.open_csv(fh, read_options=csv.ReadOptions(block_size=BLOCK_SIZE), convert_options=convert)
                )
            else:
                pj = require("pyarrow.json", "lake")
                parse = pj.ParseOptions(explicit_schema=spec_schema) if spec_schema is not None else None
                fh = _objects_first(fh, obj.key)
                batches = iter(
                    pj.open_json(fh, read_options=pj.ReadOptions(block_size=BLOCK_SIZE), parse_options=parse)
                )
            for batch in batches:
                if spec_schema is not None:
                    batch = _conform_batch(pa, batch, spec_schema, obj.key)
                else:  # a column with no value at all has no type a table can take (Iceberg has no null type)
                    batch = batch.select([i for i, f in enumerate(batch.schema) if not pa.types.is_null(f.type)])
                yield batch


class _Prefixed(io.RawIOBase):
    """A stream whose first bytes were already read (``head``), then the rest of ``body``."""

    def __init__(self, head: bytes, body: Any) -> None:
        self.head, self.body = head, body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n], self.head = self.head[:n], self.head[n:]
            return n
        data = self.body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _objects_first(body: Any, key: str) -> Any:
    """JSON lines must start with an object: pyarrow 25's JSON reader crashes the whole process (SIGSEGV) on a file
    whose first line is ``null`` (found by fuzzing; every retry would crash again and block the prefix)."""
    head = b""
    while True:
        chunk = body.read(4096)
        head += chunk
        stripped = head.lstrip(b" \t\r\n\xef\xbb\xbf")
        if stripped or not chunk:
            break
    if stripped and not stripped.startswith(b"{"):
        raise ContentError(f"{key}: JSON lines must be one JSON object per line; the first line starts with "
                           f"{stripped[:20]!r}")  # fmt: skip
    return io.BufferedReader(_Prefixed(head, body), BLOCK_SIZE)


class RangedObject(io.RawIOBase):
    """A seekable read-only view of one S3 object version through ranged GETs (Parquet footers first)."""

    def __init__(self, client: Any, bucket: str, obj: S3Object) -> None:
        self.client, self.bucket, self.obj, self.pos = client, bucket, obj, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.obj.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        end = min(self.pos + len(buffer), self.obj.size)
        if end <= self.pos:
            return 0
        body = self.client.get_object(
            Bucket=self.bucket, Key=self.obj.key, Range=f"bytes={self.pos}-{end - 1}", IfMatch=f'"{self.obj.etag}"'
        )["Body"].read()
        buffer[: len(body)] = body
        self.pos += len(body)
        return len(body)


def _spec_part(pa: Any, schema: Any) -> Any:
    """The spec columns of a raw schema (without the lake's source columns)."""
    if schema is None:
        return None
    from mlops_ops.lake.tables import SOURCE_COLUMNS

    return pa.schema([f for f in schema if f.name not in SOURCE_COLUMNS])


def _with_meta(pa: Any, batch: Any, meta: dict[str, Any], schema: Any) -> Any:
    from mlops_ops.lake.tables import SOURCE_COLUMNS

    clash = [name for name in batch.schema.names if name in SOURCE_COLUMNS]
    if clash:
        raise ContentError(
            f"column(s) {', '.join(clash)} clash with the lake's source columns; give the source a schema"
        )
    arrays = {name: batch.column(name) for name in batch.schema.names}
    arrays.update(meta)
    if schema is not None:
        return pa.RecordBatch.from_arrays(
            [arrays.get(f.name, pa.nulls(batch.num_rows, f.type)) for f in schema], schema=schema
        )
    return pa.RecordBatch.from_pydict(arrays)


def _union_schema(files: list[ClosedFile], raw: Any) -> Any:
    """Columns of files written without a spec schema (read from their footers)."""
    pa = require("pyarrow", "lake")
    pq = require("pyarrow.parquet", "lake")
    schemas = []
    for f in files:
        with raw.io.new_input(f.path).open() as fh:
            schemas.append(pq.read_schema(fh))
    try:
        return pa.unify_schemas(schemas)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        from mlops_ops.exceptions import LakeSchemaError

        raise LakeSchemaError(
            f"objects of this batch disagree on column types ({err}); give the source a schema"
        ) from err


def _conform_batch(pa: Any, batch: Any, schema: Any, key: str) -> Any:
    missing = [name for name in schema.names if name not in batch.schema.names]
    if missing:
        raise ContentError(f"{key}: missing column(s) {', '.join(missing)} required by the schema")
    return pa.RecordBatch.from_arrays(
        [batch.column(name).cast(schema.field(name).type) for name in schema.names], schema=schema
    )


# S3's answers that another try may change (throttling, the service's own faults); other 4xx answers will not
_TRANSIENT_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed",
                              "ServiceUnavailable", "InternalError", "OperationAborted",
                              "PreconditionFailed"})  # fmt: skip  # If-Match: the object was replaced mid-read
_GONE_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def classify(err: BaseException) -> str:
    """What reading an object again would do, by the error's type (never its words: a CSV cell may read ``timeout``).

    ``content``: the same bytes fail the same way (a dead letter); ``transient``: the network or the service
    (retried with backoff); ``gone``: deleted since the listing; ``refused``: S3 said no (403 and other 4xx), which a
    retry does not change. pyarrow re-raises the Python error of the file it reads, so a broken connection under the
    CSV, JSON or Parquet reader arrives as itself."""
    if isinstance(err, ContentError):
        return "content"
    from botocore.exceptions import BotoCoreError, ClientError  # the S3 client's (boto3: the lake extra)

    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _GONE_CODES or status == 404:
            return "gone"
        if code in _TRANSIENT_CODES or status >= 500 or status == 429:
            return "transient"
        return "refused"
    if isinstance(err, BotoCoreError | OSError | ConnectionError | TimeoutError):
        return "transient"
    if isinstance(err, ValueError | UnicodeError | KeyError | TypeError | IndexError | NotImplementedError):
        return "content"  # pyarrow's ArrowInvalid, ArrowTypeError, ArrowNotImplementedError among them
    return "transient"
