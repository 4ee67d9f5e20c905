from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlops_ops.lake.parquet_files import RollingParquetWriter
from mlops_ops.lake.tables import arrow_schema


def _opener(path: str):  # type: ignore[no-untyped-def]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return pa.OSFile(path, "wb")


def test_files_are_bounded_and_know_their_range(tmp_path: Path) -> None:
    schema = arrow_schema({"v": "int", "_offset": "int"})
    writer = RollingParquetWriter(str(tmp_path / "data"), _opener, schema=schema, rows_per_group=3, rows_per_file=7)
    for offset in range(100, 120):
        writer.add({"v": offset * 2, "_offset": offset}, offset)
    files = writer.close()
    assert [(f.first, f.last, f.rows) for f in files] == [(100, 106, 7), (107, 113, 7), (114, 119, 6)]
    for f in files:
        assert f.path.startswith(str(tmp_path / "data"))
        table = pq.read_table(f.path)
        assert table.column("_offset").to_pylist() == list(range(f.first, f.last + 1))
        assert pq.ParquetFile(f.path).metadata.num_row_groups == -(-f.rows // 3)  # streamed in groups


def test_a_growing_schema_starts_a_new_file(tmp_path: Path) -> None:
    columns = {"a": "int"}
    writer = RollingParquetWriter(str(tmp_path), _opener, schema=lambda: arrow_schema(columns), rows_per_group=2)
    writer.add({"a": 1}, 0)
    writer.add({"a": 2}, 1)
    columns["b"] = "string"  # a column discovered later in the batch
    writer.add({"a": 3, "b": "x"}, 2)
    writer.add({"a": 4}, 3)
    files = writer.close()
    assert [(f.first, f.last) for f in files] == [(0, 1), (2, 3)]
    assert pq.read_table(files[1].path).column("b").to_pylist() == ["x", None]


def test_empty_writer_writes_nothing(tmp_path: Path) -> None:
    assert RollingParquetWriter(str(tmp_path), _opener).close() == []
    assert list(tmp_path.iterdir()) == []


def test_large_rows_flush_by_bytes_not_only_by_count(tmp_path: Path) -> None:
    """A burst of 1 MiB messages: the buffer holds at most ``bytes_per_group`` of them, not 10,000 (N14)."""
    schema = arrow_schema({"value": "string", "_offset": "int"})
    writer = RollingParquetWriter(str(tmp_path / "data"), _opener, schema=schema, rows_per_group=10_000,
                                  rows_per_file=100_000, bytes_per_group=4 << 20)  # fmt: skip
    big = "x" * (1 << 20)
    held = []
    for offset in range(12):
        writer.add({"value": big, "_offset": offset}, offset, len(big))
        held.append(len(writer._rows_buf))
    assert max(held) <= 4 and sum(f.rows for f in writer.close()) == 12  # never more than 4 MiB buffered
    (file,) = writer.closed
    groups = pq.ParquetFile(file.path).metadata
    assert groups.num_row_groups == 3 and all(groups.row_group(i).num_rows == 4 for i in range(3))
