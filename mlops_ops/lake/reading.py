"""Reading lake tables at a pinned snapshot: whole tables, filtered scans, the files a range of snapshots added."""

from __future__ import annotations

from typing import Any

from mlops_ops.lake import transaction


def read_files(io: Any, paths: list[str], columns: list[str] | None = None) -> Any:
    """Some data files of a table as one pandas DataFrame (for data small enough to hold in memory)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for path in paths:
        with io.new_input(path).open() as fh:
            tables.append(pq.read_table(fh, columns=columns))
    if not tables:
        return pa.table({}).to_pandas()
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def scan_frame(table: Any, snapshot_id: int, row_filter: Any = None, columns: tuple[str, ...] = ("*",)) -> Any:
    """Rows of ``table`` as of ``snapshot_id`` (time travel), as pandas."""
    from pyiceberg.expressions import AlwaysTrue

    return table.scan(
        snapshot_id=snapshot_id, row_filter=row_filter or AlwaysTrue(), selected_fields=columns
    ).to_pandas()


def live_files(table: Any, snapshot_id: int) -> list[tuple[str, int]]:
    """``(path, rows)`` of every data file of ``table`` as of ``snapshot_id``."""
    return [(t.file.file_path, int(t.file.record_count)) for t in table.scan(snapshot_id=snapshot_id).plan_files()]


def added_since(table: Any, since: int | None, until: int) -> tuple[list[tuple[str, int]], bool]:
    """Files added on ``main`` after snapshot ``since`` up to ``until`` that are still live at ``until``, and
    whether that range only appended (no rows replaced or deleted). ``since`` not an ancestor of ``until``
    (history rewritten or expired) counts as not append-only."""
    chain = transaction.ancestors(table, table.snapshot_by_id(until), stop_at=since)
    reached = since is None or (chain and chain[-1].parent_snapshot_id == since) or (not chain and since == until)
    append_only = bool(reached)
    added: list[str] = []
    for snap in chain:
        if transaction.rewrites_only_before(table, snap, since):
            continue  # a compaction of files read before ``since``: same rows, nothing new
        new, removed = transaction.added_and_removed(table, snap.snapshot_id)
        append_only = append_only and not removed
        added += [f.file_path for f in new]
    live = dict(live_files(table, until))
    return [(p, live[p]) for p in added if p in live], append_only
