"""What a lake dataset holds now: the committed files, read from its state, never from a listing."""

from __future__ import annotations

import json
from typing import Any

from mlops_ops.lake import quarantine
from mlops_ops.lake.store import Dataset, lake_path


def committed_batches(
    dataset: Dataset, conn_id: str | None = "aws_default", *, admitted_only: bool = False
) -> list[tuple[str, list[dict[str, Any]]]]:
    """``(manifest URI, file entries)`` of every committed batch, Kafka and S3, oldest first.

    With ``admitted_only``, batches held in quarantine by a quality gate are left out.
    """
    blocked = (
        {r["manifest_uri"] for r in quarantine.quarantined_batches(dataset) if quarantine.is_blocked(r)}
        if admitted_only
        else set()
    )
    batches: list[tuple[str, list[dict[str, Any]]]] = []
    kafka = dataset.read_json("_state", "kafka.json")
    if kafka:
        for uri in kafka["manifests"]:
            if uri not in blocked:
                batches.append((uri, json.loads(lake_path(uri, conn_id).read_bytes())["files"]))
    s3 = dataset.read_json("_state", "s3.json")
    if s3:
        by_manifest: dict[str, list[dict[str, Any]]] = {}
        for entry in s3["objects"].values():
            if entry.get("manifest") not in blocked and entry["files"]:
                by_manifest.setdefault(entry.get("manifest", ""), []).extend(entry["files"])
        order = {uri: i for i, uri in enumerate(s3.get("manifests", []))}
        batches += sorted(by_manifest.items(), key=lambda item: order.get(item[0], -1))
    return batches


def committed_files(
    dataset: Dataset, conn_id: str | None = "aws_default", *, admitted_only: bool = False
) -> list[dict[str, Any]]:
    """File entries (``uri``, ``rows``, ``sha256``, ``schema``) of every committed batch, Kafka and S3."""
    return [f for _, files in committed_batches(dataset, conn_id, admitted_only=admitted_only) for f in files]


def read_frame(files: list[dict[str, Any]], conn_id: str | None = "aws_default") -> Any:
    """The rows of some file entries as one pandas DataFrame (for data small enough to hold in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for entry in files:
        with lake_path(entry["uri"], conn_id).open("rb") as fh:
            tables.append(pq.read_table(fh))
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def manifest_files(manifest_uri: str, conn_id: str | None = "aws_default") -> list[dict[str, Any]]:
    """The data file entries of one ingest manifest (Kafka or S3)."""
    manifest = json.loads(lake_path(manifest_uri, conn_id).read_bytes())
    if manifest.get("kind") == "s3":
        return [f for entry in manifest["objects"].values() for f in entry["files"]]
    return list(manifest["files"])
