"""Small history tables of a pipeline: one row per drift check (``drift_checks``) and per gated batch
(``quality_checks``), appended once per key through the lake's one transaction module.

A row is keyed (``batch``) so a retried task adds none; readers (the drift window, the approval evidence, lineage)
find rows by that key or by their columns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mlops_ops.lake import transaction
from mlops_ops.lake.tables import arrow_schema, data_folder


def row_key(prefix: str, value: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_.-]", "_", value)


def append_row(table: Any, key: str, row: Mapping[str, Any], columns: Mapping[str, str],
               properties: Mapping[str, str]) -> int:  # fmt: skip
    """Write ``row`` as one Parquet file and append it under ``key``; a second call with the same key adds nothing."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = transaction.committed_batch(table.refresh(), key)
    if done is not None:
        return int(done.snapshot_id)
    path = data_folder(table, key + ".parquet")
    with table.io.new_output(path).create(overwrite=True) as fh:
        pq.write_table(pa.Table.from_pylist([dict(row)], schema=arrow_schema(columns)), fh)
    return transaction.append_once(table, key, [path], properties)


def rows(table: Any) -> list[dict[str, Any]]:
    """Every row of a history table (``[]`` when it was never written)."""
    if table is None or transaction.head(table) is None:
        return []
    return list(table.scan().to_arrow().to_pylist())


def gate_rows(tables: Any, until: int | None, since: int | None, limit: int = 10) -> list[dict[str, Any]]:
    """Quality-gate rows of the batches that ``raw``'s ``main`` published after snapshot ``since`` up to ``until``
    (newest first, at most ``limit``): the data a model built from ``until`` saw that one built from ``since`` did not.
    """
    raw = tables.load("raw")
    if raw is None or until is None:
        return []
    head = raw.snapshot_by_id(until)
    if head is None:  # expired: nothing to walk
        return []
    batch_ids = [transaction.summary_of(s).get(transaction.BATCH_KEY) for s in transaction.ancestors(raw, head, since)]
    wanted = [b for b in batch_ids if b][: limit * 4]
    if not wanted:
        return []
    found = {r["batch_id"]: r for r in rows(tables.load("quality_checks"))}
    return [found[b] for b in wanted if b in found][:limit]
