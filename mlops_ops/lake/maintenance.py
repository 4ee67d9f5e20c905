"""``mlops-ops lake maintain``: expire old snapshots and compact small files, never losing what is still read.

Kept, whatever their age: every snapshot a ref points at (``main``, audit branches), every snapshot a
registered model version names (its features and raw snapshots: replay and drift read them by time travel),
and ``raw``'s history back to the oldest position a reader still starts from (the last features build, the
last drift check), so incremental builds and drift windows see every file added since; and in
``raw_quarantine`` the snapshot of every batch still held (``quality list`` and ``quality release`` read it).

Not compacted: ``raw_quarantine`` (a batch is released as it was held), and a table while a batch is staged on
one of its audit branches (the batch removes exactly the files it saw, when it is published).

Compaction rewrites the small data files of a table into larger ones in one commit that removes and adds the
same rows (``mlops.decision=compaction``); for ``raw`` only files older than those reader positions are
touched, and the commit records that bound so incremental readers know it changed nothing they read.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_ops.exceptions import LakeConflictError
from mlops_ops.lake import transaction
from mlops_ops.lake.tables import DRIFT_CHECKS, FEATURES, QUARANTINE, RAW, PipelineTables

log = logging.getLogger(__name__)

SMALL_FILE_BYTES = 32 << 20
TARGET_FILE_ROWS = 1_000_000


def registered_snapshots(mlflow_conn_id: str = "mlflow_default", client: Any = None) -> dict[str, set[int]]:
    """``{table ident: snapshot ids}`` named by the tags of every registered model version."""
    from mlops_ops.lake.tables import parse_snapshot_ref
    from mlops_ops.training.run import FEATURES_TAG, RAW_SNAPSHOT_TAG

    if client is None:
        from mlops_ops.hooks.mlflow import MlflowHook

        client = MlflowHook(mlflow_conn_id).get_conn()
    keep: dict[str, set[int]] = {}
    token = None
    while True:
        page = client.search_model_versions(max_results=1000, page_token=token)
        for mv in page:
            tags = mv.tags or {}
            if tags.get(FEATURES_TAG):
                ident, sid = parse_snapshot_ref(tags[FEATURES_TAG])
                keep.setdefault(ident, set()).add(sid)
                pipeline = ident.rsplit(".", 1)[0]
                if tags.get(RAW_SNAPSHOT_TAG):
                    keep.setdefault(f"{pipeline}.{RAW}", set()).add(int(tags[RAW_SNAPSHOT_TAG]))
        token = getattr(page, "token", None)
        if not token:
            return keep


def reader_positions(tables: PipelineTables) -> set[int]:
    """Raw snapshots incremental readers start from: the last features build, the last drift check."""
    from mlops_ops.lake.features import RAW_SNAPSHOT_KEY
    from mlops_ops.monitoring.window import last_checked

    out: set[int] = set()
    features = tables.load(FEATURES)
    built = transaction.summary_of(transaction.head(features)).get(RAW_SNAPSHOT_KEY) if features else None
    if built:
        out.add(int(built))
    checked = last_checked(tables.load(DRIFT_CHECKS))
    if checked is not None:
        out.add(checked)
    return out


def _protected(table: Any, keep: set[int], positions: set[int]) -> set[int]:
    ids = {ref.snapshot_id for ref in table.metadata.refs.values()} | keep
    main = transaction.head(table)
    if main is not None and positions:
        chain = transaction.ancestors(table, main)
        chain_ids = [s.snapshot_id for s in chain]
        oldest = max((chain_ids.index(p) for p in positions if p in chain_ids), default=len(chain_ids) - 1)
        ids |= set(chain_ids[: oldest + 1])
    return ids


def maintain(tables: PipelineTables, *, older_than_days: float, keep: dict[str, set[int]],
             compact: bool = True) -> dict[str, Any]:  # fmt: skip
    cutoff_ms = (datetime.now(UTC) - timedelta(days=older_than_days)).timestamp() * 1000
    positions = reader_positions(tables)
    report: dict[str, Any] = {}
    for ident in tables.catalog.list_tables(tables.pipeline):
        name = ident[-1]
        table = tables.load(name)
        entry: dict[str, Any] = {}
        staged = [r for r in table.metadata.refs if r.startswith("audit_")]
        if compact and name not in (DRIFT_CHECKS, QUARANTINE) and not staged:
            entry["compaction"] = compact_table(table, positions if name == RAW else set())
            table = table.refresh()
        elif compact and (staged or name == QUARANTINE):
            entry["compaction"] = {"skipped": f"batch staged on {', '.join(staged)}" if staged else
                                   "quarantined batches are released as they were held"}  # fmt: skip
        expired = _expire(tables, name, table, keep.get(tables.ident(name), set()), positions, cutoff_ms)
        entry.update(expired=len(expired), kept=len(table.refresh().snapshots()))
        report[tables.ident(name)] = entry
        log.info("maintained %s: %s", tables.ident(name), entry)
    return report


def _expire(
    tables: PipelineTables, name: str, table: Any, keep: set[int], positions: set[int], cutoff_ms: float
) -> list[int]:
    """Expire ``table``'s old snapshots that nothing protects; another maintenance run (or a writer) committing
    meanwhile makes this one look again, from the table as it is then."""
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(3):
        protected = _protected(table, keep, positions if name == RAW else set())
        if name == QUARANTINE:  # a held batch stays listed and releasable whatever its age (N1)
            from mlops_ops.lake.batches import quarantined

            protected |= {int(b["snapshot_id"]) for b in quarantined(tables)}
        expired = [s.snapshot_id for s in table.snapshots()
                   if s.timestamp_ms < cutoff_ms and s.snapshot_id not in protected]  # fmt: skip
        if not expired:
            return []
        try:
            table.maintenance.expire_snapshots().by_ids(expired).commit()
            return expired
        except (CommitFailedException, ValueError) as err:  # ValueError: another run expired one of them first
            if attempt == 2:
                raise LakeConflictError(f"{tables.ident(name)} kept changing while its snapshots were expired "
                                        f"({err}); run maintenance again") from err  # fmt: skip
            table = table.refresh()
    return []


def compact_table(table: Any, positions: set[int]) -> dict[str, int]:
    """Rewrite small files into files of up to ``TARGET_FILE_ROWS`` rows, in one conditional commit."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_ops.lake.tables import data_folder

    main = transaction.head(table)
    if main is None:
        return {"rewritten": 0, "written": 0}
    bound = main.snapshot_id
    if positions:
        chain_ids = [s.snapshot_id for s in transaction.ancestors(table, main)]
        known = [p for p in positions if p in chain_ids]
        if not known:
            return {"rewritten": 0, "written": 0}
        bound = max(known, key=chain_ids.index)  # the oldest position: nothing added after it is touched
    eligible = {t.file.file_path: t.file for t in table.scan(snapshot_id=bound).plan_files()
                if t.file.file_size_in_bytes < SMALL_FILE_BYTES}  # fmt: skip
    live = {t.file.file_path: t.file for t in table.scan().plan_files()}
    small = [f for p, f in eligible.items() if p in live]
    if len(small) < 2:
        return {"rewritten": 0, "written": 0}
    written: list[str] = []
    batch = f"compaction-{main.snapshot_id}"
    buffer: list[Any] = []
    rows = 0

    def flush() -> None:
        nonlocal buffer, rows
        if not buffer:
            return
        path = data_folder(table, batch, f"{len(written):05d}.parquet")
        with table.io.new_output(path).create(overwrite=True) as fh:
            pq.write_table(pa.concat_tables(buffer, promote_options="default"), fh, compression="zstd")
        written.append(path)
        buffer, rows = [], 0

    for f in small:
        with table.io.new_input(f.file_path).open() as fh:
            part = pq.read_table(fh)
        buffer.append(part)
        rows += part.num_rows
        if rows >= TARGET_FILE_ROWS:
            flush()
    flush()
    props = {transaction.DECISION_KEY: "compaction", transaction.COMPACTED_BEFORE_KEY: str(bound)}
    transaction.replace_files(table, batch, removed=small, files=written, properties=props,
                              expected_head=main.snapshot_id)  # fmt: skip
    return {"rewritten": len(small), "written": len(written)}


def describe(tables: PipelineTables) -> dict[str, Any]:
    """Each table: current snapshot, its summary, refs, rows."""
    out: dict[str, Any] = {}
    for ident in tables.catalog.list_tables(tables.pipeline):
        table = tables.load(ident[-1])
        head = transaction.head(table)
        out[tables.ident(ident[-1])] = {
            "location": table.location(),
            "snapshot_id": head.snapshot_id if head else None,
            "refs": {name: ref.snapshot_id for name, ref in table.metadata.refs.items()},
            "snapshots": len(table.snapshots()),
            "summary": transaction.summary_of(head),
            "rows": int((head.summary or {}).get("total-records", 0)) if head and head.summary else 0,
        }
    return out
