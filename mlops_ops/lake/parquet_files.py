"""Stream rows of one source partition into bounded-size Parquet files in a staging area.

Rows are buffered ``rows_per_group`` at a time and written as row groups, so memory
does not grow with the batch; a file is closed after ``rows_per_file`` rows. Each
closed file knows the first and last source position it holds, which is what its
published name is made of.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk import ObjectStoragePath

from mlops_ops._extras import require

PA_TYPES = {"string": "string", "int": "int64", "float": "float64", "bool": "bool_", "timestamp": "timestamp"}


def arrow_schema(columns: dict[str, str] | None, meta: dict[str, str]) -> Any:
    """A pyarrow schema for spec columns plus metadata columns, or ``None`` to infer it."""
    if columns is None:
        return None
    pa = require("pyarrow", "s3")
    fields = [pa.field(name, _arrow_type(pa, kind)) for name, kind in {**columns, **meta}.items()]
    return pa.schema(fields)


def _arrow_type(pa: Any, kind: str) -> Any:
    if kind == "timestamp":
        return pa.timestamp("us", tz="UTC")
    if kind == "binary":
        return pa.binary()
    if kind == "int32":
        return pa.int32()
    return getattr(pa, PA_TYPES[kind])()


@dataclass
class ClosedFile:
    staged: ObjectStoragePath
    first: int
    last: int
    rows: int
    sha256: str
    schema: str


@dataclass
class RollingParquetWriter:
    """Writes rows with a position (e.g. a Kafka offset) into a sequence of Parquet files."""

    staging: ObjectStoragePath
    schema: Any = None
    rows_per_group: int = 10_000
    rows_per_file: int = 100_000
    closed: list[ClosedFile] = field(default_factory=list)
    _rows_buf: list[dict[str, Any]] = field(default_factory=list)
    _pos_buf: list[int] = field(default_factory=list)
    _writer: Any = None
    _handle: Any = None
    _path: ObjectStoragePath | None = None
    _first: int = -1
    _last: int = -1
    _rows: int = 0

    def add(self, row: dict[str, Any], position: int) -> None:
        self._rows_buf.append(row)
        self._pos_buf.append(position)
        if len(self._rows_buf) >= min(self.rows_per_group, self.rows_per_file - self._rows):
            self._flush()
            if self._rows >= self.rows_per_file:
                self._close_file()

    def add_batch(self, batch: Any, first: int, last: int) -> None:
        """Write an Arrow record batch holding positions ``first..last``; files may exceed
        ``rows_per_file`` by at most one batch."""
        pa = require("pyarrow", "s3")
        self._flush()
        table = pa.Table.from_batches([batch])
        self._open_or_rotate(table.schema, first)
        self._writer.write_table(table)
        self._last = last
        self._rows += table.num_rows
        if self._rows >= self.rows_per_file:
            self._close_file()

    def close(self) -> list[ClosedFile]:
        self._flush()
        self._close_file()
        return self.closed

    def _flush(self) -> None:
        if not self._rows_buf:
            return
        pa = require("pyarrow", "s3")
        table = pa.Table.from_pylist(self._rows_buf, schema=self.schema)
        self._open_or_rotate(table.schema, self._pos_buf[0])
        self._writer.write_table(table)
        self._last = self._pos_buf[-1]
        self._rows += table.num_rows
        self._rows_buf, self._pos_buf = [], []

    def _open_or_rotate(self, schema: Any, first: int) -> None:
        pq = require("pyarrow.parquet", "s3")
        if self._writer is not None and not schema.equals(self._writer.schema):
            self._close_file()  # inferred schema changed (no spec schema): start a new file
        if self._writer is None:
            self._path = self.staging / f"{uuid.uuid4().hex}.parquet"
            if self._path.protocol in ("file", "local"):
                self._path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = _HashingWriter(self._path.open("wb"))
            self._writer = pq.ParquetWriter(self._handle, schema, compression="zstd")
            self._first = first

    def _close_file(self) -> None:
        if self._writer is None:
            return
        schema = self._writer.schema
        self._writer.close()
        self._handle.close()
        assert self._path is not None
        self.closed.append(
            ClosedFile(self._path, self._first, self._last, self._rows, self._handle.hexdigest(), schema.to_string())
        )
        self._writer = self._handle = self._path = None
        self._rows = 0


class _HashingWriter:
    """A write-only file wrapper that hashes what goes through it, so a file written to S3 is
    never downloaded again to checksum it. Parquet writers only append, so the hash is the file's."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self._digest = hashlib.sha256()
        self._size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        self._size += view.nbytes
        self._inner.write(view)
        return view.nbytes

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._inner.flush()

    def close(self) -> None:
        if not self._inner.closed:
            self._inner.close()

    @property
    def closed(self) -> bool:
        return bool(self._inner.closed)

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def hexdigest(self) -> str:
        return self._digest.hexdigest()
