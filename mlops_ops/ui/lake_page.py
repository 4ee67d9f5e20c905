"""The JSON document of one lake snapshot, for the "Lake snapshot" extra link."""

from __future__ import annotations

from typing import Any

MAX_FILES = 1000


def snapshot_document(pipeline: str, table: str, snapshot_id: int) -> dict[str, Any] | None:
    """Summary (positions, rows, decisions), refs pointing at it and the files it added; ``None`` if unknown."""
    from mlops_ops.hooks.iceberg import IcebergCatalogHook
    from mlops_ops.lake import transaction
    from mlops_ops.lake.tables import PipelineTables

    loaded = PipelineTables(IcebergCatalogHook().get_conn(), pipeline).load(table)
    snap = loaded.snapshot_by_id(snapshot_id) if loaded is not None else None
    if snap is None:
        return None
    added, removed = transaction.added_and_removed(loaded, snapshot_id)
    return {
        "table": f"{pipeline}.{table}",
        "snapshot_id": snapshot_id,
        "parent_snapshot_id": snap.parent_snapshot_id,
        "timestamp_ms": snap.timestamp_ms,
        "operation": str(snap.summary.operation.value) if snap.summary else None,
        "refs": sorted(name for name, ref in loaded.metadata.refs.items() if ref.snapshot_id == snapshot_id),
        "summary": transaction.summary_of(snap),
        "added_files": [{"path": f.file_path, "rows": f.record_count} for f in added[:MAX_FILES]],
        "removed_files": [{"path": f.file_path, "rows": f.record_count} for f in removed[:MAX_FILES]],
    }
