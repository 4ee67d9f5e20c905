"""Stream rows of one source partition into bounded-size Parquet files at their final place in a table.

Rows are buffered ``rows_per_group`` at a time, or fewer once they hold ``bytes_per_group`` (the caller's size of
each row, e.g. the message's bytes: a burst of 1 MB messages must not fill 10,000-row buffers), and written as row
groups, so memory does not grow with the batch; a file is closed after ``rows_per_file`` rows. Files are written
where the table keeps its data and become part of it only when a commit names them
(:mod:`mlops_ops.lake.transaction`): a file of a killed run is never read. Each closed file knows the first and
last source position it holds.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from mlops_ops._extras import require

Opener = Callable[[str], BinaryIO]


def table_opener(io: Any) -> Opener:
    """Open a path for writing through a pyiceberg ``FileIO`` (the table's own storage and credentials)."""
    return lambda path: io.new_output(path).create(overwrite=True)


@dataclass
class ClosedFile:
    path: str
    first: int
    last: int
    rows: int


@dataclass
class RollingParquetWriter:
    """Writes rows with a position (e.g. a Kafka offset) into a sequence of Parquet files under ``folder``.

    ``schema`` may be a pyarrow schema, a callable returning one at each flush (a schema that grows as
    columns are discovered), or ``None`` to infer it from the rows.
    """

    folder: str
    opener: Opener
    schema: Any = None
    rows_per_group: int = 10_000
    rows_per_file: int = 100_000
    bytes_per_group: int = 32 << 20
    closed: list[ClosedFile] = field(default_factory=list)
    _rows_buf: list[dict[str, Any]] = field(default_factory=list)
    _bytes_buf: int = 0
    _first_buf: int = -1
    _last_buf: int = -1
    _writer: Any = None
    _handle: Any = None
    _path: str | None = None
    _first: int = -1
    _last: int = -1
    _rows: int = 0

    def add(self, row: dict[str, Any], position: int, size: int = 0) -> None:
        """Buffer ``row`` (about ``size`` bytes: what bounds the buffer beside its row count)."""
        if not self._rows_buf:
            self._first_buf = position
        self._rows_buf.append(row)
        self._bytes_buf += size
        self._last_buf = position
        if (
            len(self._rows_buf) >= min(self.rows_per_group, self.rows_per_file - self._rows)
            or self._bytes_buf >= self.bytes_per_group
        ):
            self._flush()
            if self._rows >= self.rows_per_file:
                self._close_file()

    def add_batch(self, batch: Any, first: int, last: int) -> None:
        """Write an Arrow record batch holding positions ``first..last``; files may exceed
        ``rows_per_file`` by at most one batch."""
        pa = require("pyarrow", "lake")
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

    def abandon(self) -> None:
        """Stop without closing cleanly (the files are never committed, so never read)."""
        self._rows_buf, self._bytes_buf = [], 0
        try:
            self._close_file()
        except Exception:  # noqa: BLE001, S110 - the files are being given up anyway
            pass

    def _flush(self) -> None:
        if not self._rows_buf:
            return
        pa = require("pyarrow", "lake")
        schema = self.schema() if callable(self.schema) else self.schema
        table = pa.Table.from_pylist(self._rows_buf, schema=schema)
        self._open_or_rotate(table.schema, self._first_buf)
        self._writer.write_table(table)
        self._last = self._last_buf
        self._rows += table.num_rows
        self._rows_buf, self._bytes_buf = [], 0

    def _open_or_rotate(self, schema: Any, first: int) -> None:
        pq = require("pyarrow.parquet", "lake")
        if self._writer is not None and not schema.equals(self._writer.schema):
            self._close_file()  # the schema grew (a new column was discovered): start a new file
        if self._writer is None:
            self._path = f"{self.folder.rstrip('/')}/{uuid.uuid4().hex}.parquet"
            self._handle = self.opener(self._path)
            self._writer = pq.ParquetWriter(self._handle, schema, compression="zstd")
            self._first = first

    def _close_file(self) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._handle.close()
        assert self._path is not None
        self.closed.append(ClosedFile(self._path, self._first, self._last, self._rows))
        self._writer = self._handle = self._path = None
        self._rows = 0
