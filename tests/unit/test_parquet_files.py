from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.parquet as pq

from mlops_ops.lake.parquet_files import RollingParquetWriter, arrow_schema
from mlops_ops.lake.store import lake_path


def test_files_are_bounded_and_know_their_range(tmp_path: Path) -> None:
    schema = arrow_schema({"v": "int"}, {"_offset": "int"})
    writer = RollingParquetWriter(lake_path(str(tmp_path)) / "stage", schema=schema, rows_per_group=3,
                                  rows_per_file=7)  # fmt: skip
    for offset in range(100, 120):
        writer.add({"v": offset * 2, "_offset": offset}, offset)
    files = writer.close()
    assert [(f.first, f.last, f.rows) for f in files] == [(100, 106, 7), (107, 113, 7), (114, 119, 6)]
    for f in files:
        table = pq.read_table(f.staged.path)
        assert table.column("_offset").to_pylist() == list(range(f.first, f.last + 1))
        assert pq.ParquetFile(f.staged.path).metadata.num_row_groups == -(-f.rows // 3)  # streamed in groups
        assert f.sha256 == hashlib.sha256(Path(f.staged.path).read_bytes()).hexdigest()


def test_inferred_schema_change_starts_a_new_file(tmp_path: Path) -> None:
    writer = RollingParquetWriter(lake_path(str(tmp_path)), rows_per_group=2, rows_per_file=100)
    writer.add({"a": 1}, 0)
    writer.add({"a": 2}, 1)
    writer.add({"a": "text"}, 2)
    writer.add({"a": "more"}, 3)
    files = writer.close()
    assert [(f.first, f.last) for f in files] == [(0, 1), (2, 3)]


def test_empty_writer_writes_nothing(tmp_path: Path) -> None:
    assert RollingParquetWriter(lake_path(str(tmp_path))).close() == []
    assert list(tmp_path.iterdir()) == []
