"""Decisions on a staged raw batch: publish it, quarantine it, or release a quarantined one.

Each decision first brings the derived tables up to date (the batch's dead letters, its quarantined rows),
idempotently by batch id, and then makes the one commit on ``raw`` that decides the batch. A crash anywhere
replays to the same end state: the derived tables hold the batch's rows once, ``raw`` decided it once.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mlops_ops.exceptions import LakeWriterError
from mlops_ops.lake import transaction
from mlops_ops.lake.rewrite import OBJECT_KEY_COLUMN, files_without
from mlops_ops.lake.tables import BATCH_COLUMN, PipelineTables, data_folder

log = logging.getLogger(__name__)

DEAD_LETTER_FILES_KEY = "mlops.dead-letter-files"
MAX_SUMMARY_TEXT = 8000


@dataclass(frozen=True)
class Verdict:
    """What a quality gate found (goes into the quarantine snapshot's summary)."""

    suite: str
    failures: list[dict[str, Any]]
    docs_page: str | None = None
    run_id: str | None = None


def _dead_letters(tables: PipelineTables, staged: transaction.StagedBatch) -> None:
    files = json.loads(staged.summary.get(DEAD_LETTER_FILES_KEY, "[]"))
    if files:
        transaction.append_once(
            tables.dead_letters(),
            staged.batch_id,
            files,
            {"mlops.source": staged.source, "mlops.raw-table": staged.table},
        )


def changes_rows(staged: transaction.StagedBatch) -> bool:
    """Whether publishing ``staged`` changes what readers of ``raw`` get: rows added, or an S3 object's old rows
    replaced. A batch of dead letters or Kafka positions only does not: it emits no Asset event, so nothing
    retrains on the same data (N19)."""
    summary = staged.summary
    return int(summary.get("mlops.rows", 0) or 0) > 0 or int(summary.get("mlops.s3.replaced-objects", 0) or 0) > 0


def unchanged_message(staged: transaction.StagedBatch) -> str:
    bad = staged.summary.get("mlops.bad", "0")
    return (f"batch {staged.batch_id} published without rows ({bad} dead letter(s), positions only): readers of raw "
            "see nothing new, so no Asset event and no retraining")  # fmt: skip


def publish(tables: PipelineTables, raw: Any, staged: transaction.StagedBatch, *, audited: bool = False) -> int:
    """Dead letters first, then ``raw`` main (the commit point of the batch). A batch of a gated source is published
    only by its gate (``audited=True``)."""
    if not audited and staged.source in transaction.gated_sources(raw.refresh()):
        raise LakeWriterError(
            f"batch {staged.batch_id} of {staged.table} waits for its quality gate (source {staged.source} is gated: "
            f"table property {transaction.GATED_PROPERTY}); only the gate publishes it, or quarantines it"
        )
    _dead_letters(tables, staged)
    return transaction.publish(raw, staged)


def quarantine(tables: PipelineTables, raw: Any, staged: transaction.StagedBatch, verdict: Verdict) -> int:
    """Copy the batch's rows to ``raw_quarantine`` with the verdict, then move ``raw``'s position past it."""
    raw = raw.refresh()
    _dead_letters(tables, staged)
    target = tables.quarantine(raw)
    props = {
        "mlops.gate.suite": verdict.suite,
        "mlops.gate.failures": _clip(verdict.failures),
        "mlops.gate.docs": verdict.docs_page or "",
        "mlops.gate.run-id": verdict.run_id or "",
        "mlops.quarantined-at": datetime.now(UTC).isoformat(),
        "mlops.state": "quarantined",
    }
    if transaction.committed_batch(target, staged.batch_id) is None:
        # only the batch's own rows: a changed S3 object's batch also carries other objects' rows it rewrote
        copies = _copy_files(raw, target, transaction.batch_files(raw, staged), staged.batch_id,
                             only_batch=staged.batch_id)  # fmt: skip
        transaction.append_once(target, staged.batch_id, copies, props)
    return transaction.discard(
        raw,
        staged,
        {**props, transaction.DECISION_KEY: "quarantined", "mlops.rows": staged.summary.get("mlops.rows", "0")},
    )


def release(tables: PipelineTables, batch_id: str, *, by: str, reason: str) -> int:
    """Publish a quarantined batch's rows to ``raw`` with who and why in the snapshot summary; idempotent."""
    if not by.strip() or not reason.strip():
        raise ValueError("a release needs both who releases the batch (by) and why (reason)")
    raw = tables.load("raw")
    held = tables.load("raw_quarantine")
    recorded = transaction.committed_batch(held, batch_id) if held is not None else None
    if raw is not None and held is not None and recorded is None and _on_main(raw, batch_id):
        return int(transaction.head(raw).snapshot_id)  # released before, and maintenance expired the record of it
    if raw is None or held is None or recorded is None:
        known = [b["batch"] for b in quarantined(tables)]
        raise LookupError(
            f"no quarantined batch '{batch_id}' in {tables.ident('raw_quarantine')}; "
            f"quarantined batches: {', '.join(known) or 'none'}"
        )
    release_id = f"release-{batch_id}"
    if transaction.committed_batch(raw, release_id) is None and not _on_main(raw, batch_id):
        files = [task.file.file_path for task in held.scan(row_filter=_batch_filter(batch_id)).plan_files()]
        copies = _copy_files(held, raw, files, release_id, only_batch=batch_id)
        # S3 objects whose current version is this batch's replace the rows of their older versions on main
        removed, kept = files_without(raw, OBJECT_KEY_COLUMN, _current_objects(raw, batch_id), release_id)
        props = {
            "mlops.released-by": by,
            "mlops.release-reason": reason[:1000],
            "mlops.released-batch": batch_id,
            "mlops.source": "release",
            transaction.DECISION_KEY: "released",
        }
        main = transaction.head(raw)
        transaction.replace_files(raw, release_id, removed=removed, files=copies + kept, properties=props,
                                  expected_head=main.snapshot_id if main is not None else None)  # fmt: skip
    from pyiceberg.exceptions import CommitFailedException

    for attempt in range(5):  # another release of the same batch (or a quarantine) may commit first
        held = held.refresh()
        if not any(True for _ in held.scan(row_filter=_batch_filter(batch_id)).plan_files()):
            marked = any(transaction.summary_of(s).get("mlops.released-batch") == batch_id for s in held.snapshots())
            if not marked:  # a held batch without rows of its own (its objects all dead letters): record the release
                transaction.commit_properties(held, {"mlops.released-batch": batch_id, "mlops.released-by": by})
            break
        try:
            held.delete(
                delete_filter=_batch_filter(batch_id),
                snapshot_properties={"mlops.released-batch": batch_id, "mlops.released-by": by},
            )
        except CommitFailedException:
            if attempt == 4:
                raise
    log.warning("batch %s released from quarantine by %s: %s", batch_id, by, reason)
    return int(transaction.head(raw.refresh()).snapshot_id)


def _current_objects(raw: Any, batch_id: str) -> list[str]:
    """Keys of the S3 objects whose current version (raw's S3 state) came with this batch: rows, or a dead letter."""
    from mlops_ops.lake.s3_ingest import SOURCE, read_state

    objects = read_state(raw.io, transaction.cursor(transaction.head(raw), SOURCE)).get("objects", {})
    return sorted(k.removeprefix("s3://").partition("/")[2] for k, o in objects.items() if o.get("batch") == batch_id)


def _on_main(raw: Any, batch_id: str) -> bool:
    """Whether ``raw`` main holds rows of ``batch_id`` (a release that committed and whose snapshot maintenance
    expired since: the rows tell, the summary may be gone)."""
    return any(True for _ in raw.refresh().scan(row_filter=_batch_filter(batch_id), selected_fields=(BATCH_COLUMN,))
               .to_arrow_batch_reader())  # fmt: skip


def quarantined(tables: PipelineTables) -> list[dict[str, Any]]:
    """Batches held in quarantine now, with the gate's verdict (newest last)."""
    held = tables.load("raw_quarantine")
    if held is None:
        return []
    released = {transaction.summary_of(s).get("mlops.released-batch") for s in held.snapshots()}
    present = set(held.scan(selected_fields=(BATCH_COLUMN,)).to_arrow().column(BATCH_COLUMN).to_pylist())
    out = []
    for snap in held.snapshots():
        s = transaction.summary_of(snap)
        batch = s.get(transaction.BATCH_KEY)
        # held: its rows are still there (a release's own snapshot may have been expired since)
        if (
            s.get("mlops.state") == "quarantined"
            and batch not in released
            and (batch in present or not int(s.get("added-records", 0)))
        ):
            out.append(
                {
                    "batch": s.get(transaction.BATCH_KEY),
                    "snapshot_id": snap.snapshot_id,
                    "suite": s.get("mlops.gate.suite"),
                    "failures": json.loads(s.get("mlops.gate.failures", "[]")),
                    "docs": s.get("mlops.gate.docs"),
                    "at": s.get("mlops.quarantined-at"),
                    "rows": int(s.get("added-records", 0)),
                }
            )
    return out


def _batch_filter(batch_id: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", batch_id):
        raise ValueError(f"'{batch_id}' is not a batch id")
    return f"{BATCH_COLUMN} == '{batch_id}'"


def _copy_files(source: Any, target: Any, paths: list[str], batch_id: str, only_batch: str | None = None) -> list[str]:
    """Copy data files into ``target``'s data folder (tables never share files: maintenance of one cannot
    remove another's data). One file at a time; files are bounded by ``rows_per_file``. ``only_batch``: copy only
    that batch's rows (a file may hold several batches' rows)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = []
    for i, path in enumerate(paths):
        with source.io.new_input(path).open() as fh:
            data = pq.read_table(fh)
        if only_batch is not None:
            data = data.filter(pc.equal(data.column(BATCH_COLUMN), only_batch))
        dest = data_folder(target, batch_id, f"{i:05d}.parquet")
        with target.io.new_output(dest).create(overwrite=True) as fh:
            pq.write_table(data, fh, compression="zstd")
        out.append(dest)
    return out


def _clip(value: Any) -> str:
    text = transaction.json_value(value)
    return (
        text
        if len(text) <= MAX_SUMMARY_TEXT
        else transaction.json_value(value[:5])
        if isinstance(value, list)
        else text[:MAX_SUMMARY_TEXT]
    )
