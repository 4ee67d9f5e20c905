"""The lake folder: a URI (local path or ``s3://bucket/prefix``) for what is not a table.

Tables live in the Iceberg catalog (:mod:`mlops_ops.lake.tables`). This folder, laid out per pipeline, holds
the files people open in a browser: GX Data Docs (``<pipeline>/_data_docs/``) and drift reports
(``<pipeline>/monitoring/reports/``), written whole (an S3 PUT, or a sibling file and a rename on disk).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from airflow.sdk import ObjectStoragePath

from mlops_ops.exceptions import LakeNotConfiguredError


def lake_path(uri: str, conn_id: str | None = None) -> ObjectStoragePath:
    """An :class:`ObjectStoragePath` for a lake URI; plain paths become ``file://`` URIs. An empty URI (no Variable
    ``mlops_ops_lake`` and no ``lake:`` in the spec) is an error naming what to set: there is no default bucket."""
    if not uri.strip():
        raise LakeNotConfiguredError()
    if uri.startswith("/"):
        uri = "file://" + uri
    if uri.startswith("s3://"):
        return ObjectStoragePath(uri, conn_id=conn_id)
    return ObjectStoragePath(uri)


@dataclass(frozen=True)
class Dataset:
    """One folder of one pipeline in the lake folder (Data Docs, monitoring reports)."""

    root: ObjectStoragePath

    @classmethod
    def at(cls, lake: str, pipeline: str, dataset: str, conn_id: str | None = None) -> Dataset:
        return cls(lake_path(lake, conn_id) / pipeline / dataset)

    def path(self, *parts: str) -> ObjectStoragePath:
        out = self.root
        for part in parts:
            out = out / part
        return out

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

    def uri(self, *parts: str) -> str:
        return str(self.path(*parts))
