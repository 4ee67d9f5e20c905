"""Lake files as Spark paths, and Spark output back into a table's data folder.

Spark reads a snapshot of an Iceberg table by the snapshot's file list (no Iceberg runtime jar is needed; a
cluster that has one could read the table natively instead, see docs/lake.md). A cluster reads and writes
the lake's S3 itself (``s3://`` becomes ``s3a://``; the cluster carries hadoop-aws). A local session has no
hadoop-aws jar (none ships with pyspark and the machine may be offline), so files on S3 are copied to a
local scratch folder first, streaming, through the table's own FileIO, and Spark's output is uploaded the
same way. Local paths are used in place either way.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

COPY_CHUNK = 8 << 20


def is_local_uri(uri: str) -> bool:
    return uri.startswith(("/", "file://", "file:/"))


def local_path(uri: str) -> str:
    for prefix in ("file://", "file:"):
        if uri.startswith(prefix):
            return uri[len(prefix) :]
    return uri


@contextmanager
def spark_readable(paths: list[str], *, local_session: bool, io: Any) -> Iterator[list[str]]:
    """Paths Spark can read for ``paths``; files on S3 are staged locally for a local session."""
    if not local_session or all(is_local_uri(u) for u in paths):
        yield [spark_uri(u) for u in paths]
        return
    scratch = Path(tempfile.mkdtemp(prefix="mlops-ops-spark-in-"))
    try:
        out = []
        for i, uri in enumerate(paths):
            if is_local_uri(uri):
                out.append(local_path(uri))
                continue
            target = scratch / f"{i:06d}.parquet"
            with io.new_input(uri).open() as src, target.open("wb") as dst:
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


def upload(io: Any, local: Path, target: str) -> None:
    """Copy a local file to ``target`` through a table's FileIO."""
    with local.open("rb") as src, io.new_output(target).create(overwrite=True) as dst:
        shutil.copyfileobj(src, dst, COPY_CHUNK)
