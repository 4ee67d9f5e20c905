"""The lake: a URI (local path or ``s3://bucket/prefix``) laid out per pipeline and dataset.

Layout of one dataset (``<lake>/<pipeline>/<dataset>/``)::

    data/...            published Parquet files, named after what they hold (e.g. partition + offset range)
    quarantine/...      records that could not be decoded, with their original bytes and the reason
    manifests/*.json    one per successful ingest run: files, row counts, offsets/keys, schema
    _state/*.json       the committed position (offsets, ETags) and the list of committed manifests
    _staging/<run>/...  files being written; never read by anyone but the run that writes them

Readers use the manifests listed in ``_state``, never a directory listing, so a run that
died half-way leaves nothing visible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow.sdk import ObjectStoragePath

DEFAULT_LAKE = "s3://mlops-lake/lake"


def lake_path(uri: str, conn_id: str | None = None) -> ObjectStoragePath:
    """An :class:`ObjectStoragePath` for a lake URI; plain paths become ``file://`` URIs."""
    if uri.startswith("/"):
        uri = "file://" + uri
    if uri.startswith("s3://"):
        return ObjectStoragePath(uri, conn_id=conn_id)
    return ObjectStoragePath(uri)


@dataclass(frozen=True)
class Dataset:
    """One dataset of one pipeline in the lake."""

    root: ObjectStoragePath

    @classmethod
    def at(cls, lake: str, pipeline: str, dataset: str, conn_id: str | None = None) -> Dataset:
        return cls(lake_path(lake, conn_id) / pipeline / dataset)

    def path(self, *parts: str) -> ObjectStoragePath:
        out = self.root
        for part in parts:
            out = out / part
        return out

    def read_json(self, *parts: str) -> Any | None:
        target = self.path(*parts)
        if not target.exists():
            return None
        with target.open("rb") as fh:
            return json.loads(fh.read())

    def write_json(self, obj: Any, *parts: str) -> ObjectStoragePath:
        """Write JSON so readers see the old or the new document, never a torn one."""
        return self.write_bytes(json.dumps(obj, indent=1, sort_keys=True, default=str).encode(), *parts)

    def write_bytes(self, data: bytes, *parts: str) -> ObjectStoragePath:
        """Write a whole file atomically: an S3 PUT is atomic by itself; on a file system, a sibling and a rename."""
        target = self.path(*parts)
        if target.protocol in ("file", "local"):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f".{target.name}.tmp"
            with tmp.open("wb") as fh:
                fh.write(data)
            tmp.rename(target)
        else:
            with target.open("wb") as fh:
                fh.write(data)
        return target

    def publish(self, staged: ObjectStoragePath, *final: str) -> ObjectStoragePath:
        """Move a staged file to its final name (a rename on disk, copy + delete on S3)."""
        target = self.path(*final)
        if target.protocol in ("file", "local"):
            target.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(target)
        return target

    def remove_tree(self, *parts: str) -> None:
        target = self.path(*parts)
        if target.exists():
            target.fs.rm(target.path, recursive=True)

    def uri(self, *parts: str) -> str:
        return str(self.path(*parts))
