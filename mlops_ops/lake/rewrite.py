"""Removing rows by value from a table's current files: the files that hold any are replaced by files of their
other rows (copy-on-write), for one commit that removes the former and adds the latter.

An S3 object that changed replaces its old rows this way, wherever compaction put them (N2: the file paths a
state file recorded are gone after a compaction); a release of a changed object's batch does the same.
"""

from __future__ import annotations

import uuid
from typing import Any

from mlops_ops._extras import require
from mlops_ops.lake.tables import data_folder

OBJECT_KEY_COLUMN = "_object_key"


def files_without(table: Any, column: str, values: list[str], batch_id: str) -> tuple[list[Any], list[str]]:
    """``(data files on main holding rows whose column is in values, new files with those files' other rows)``;
    the new files are written under the batch's data folder and not committed."""
    if not values:
        return [], []
    pa = require("pyarrow", "lake")
    pc = require("pyarrow.compute", "lake")
    pq = require("pyarrow.parquet", "lake")
    from pyiceberg.expressions import In

    wanted = pa.array(values, pa.string())
    removed: list[Any] = []
    kept: list[str] = []
    for task in table.scan(row_filter=In(column, values)).plan_files():  # type: ignore[call-arg,arg-type]  # pydantic model, positional at runtime
        with table.io.new_input(task.file.file_path).open() as fh:
            data = pq.read_table(fh)
        hit = pc.fill_null(pc.is_in(data.column(column), value_set=wanted), False)
        if not pc.any(hit).as_py():
            continue  # the statistics could not rule it out, the rows do
        removed.append(task.file)
        rest = data.filter(pc.invert(hit))
        if rest.num_rows:
            path = data_folder(table, batch_id, f"kept-{len(kept):05d}-{uuid.uuid4().hex[:8]}.parquet")
            with table.io.new_output(path).create(overwrite=True) as fh:
                pq.write_table(rest, fh, compression="zstd")
            kept.append(path)
    return removed, kept
