"""Lake files as Spark paths, and Spark output back into the lake.

A cluster reads and writes the lake itself (``s3://`` becomes ``s3a://``; the cluster
carries hadoop-aws). A local session has no hadoop-aws jar (none ships with pyspark and
the machine may be offline), so lake files on S3 are copied to a local scratch folder
first, streaming, and Spark's output is uploaded by the caller. Local lake paths are used
in place either way.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops_ops.lake.store import lake_path

COPY_CHUNK = 8 << 20


def is_local_uri(uri: str) -> bool:
    return uri.startswith(("/", "file://"))


def local_path(uri: str) -> str:
    return uri[len("file://") :] if uri.startswith("file://") else uri


@contextmanager
def spark_readable(uris: list[str], *, local_session: bool, conn_id: str | None) -> Iterator[list[str]]:
    """Paths Spark can read for ``uris``; S3 files are staged locally for a local session."""
    if not local_session or all(is_local_uri(u) for u in uris):
        yield [spark_uri(u) for u in uris]
        return
    scratch = Path(tempfile.mkdtemp(prefix="mlops-ops-spark-in-"))
    try:
        out = []
        for i, uri in enumerate(uris):
            if is_local_uri(uri):
                out.append(local_path(uri))
                continue
            target = scratch / f"{i:06d}.parquet"
            with lake_path(uri, conn_id).open("rb") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst, COPY_CHUNK)
            out.append(str(target))
        yield out
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def spark_uri(uri: str) -> str:
    """How Spark on a cluster names a lake URI (hadoop-aws reads ``s3a://``)."""
    if is_local_uri(uri):
        return local_path(uri)
    return "s3a://" + uri.split("://", 1)[1] if uri.startswith("s3://") else uri


def publish_parquet(source: Any, target: Any) -> tuple[int, str]:
    """Move (same local disk) or copy one Parquet file to its published name; returns rows and SHA-256."""
    import pyarrow.parquet as pq

    with source.open("rb") as fh:
        rows = int(pq.ParquetFile(fh).metadata.num_rows)
    digest = hashlib.sha256()
    local = {"file", "local"}
    if target.protocol in local:
        target.parent.mkdir(parents=True, exist_ok=True)
    if source.protocol in local and target.protocol in local:
        with source.open("rb") as src:
            while chunk := src.read(COPY_CHUNK):
                digest.update(chunk)
        Path(source.path).replace(target.path)
        return rows, digest.hexdigest()
    with source.open("rb") as src, target.open("wb") as dst:
        while chunk := src.read(COPY_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
    return rows, digest.hexdigest()
