"""The lake holes of the invariants review (N1, N2, N3, N8), each as the history that broke a promise."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ops.exceptions import LakeConflictError, LakeWriterError
from mlops_ops.lake import batches, maintenance, transaction
from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings
from mlops_ops.lake.tables import SOURCE_COLUMNS, PipelineTables, arrow_schema, data_folder
from tests.reliability.invariants.sources import BUCKET, PREFIX, SimS3

COLUMNS = {"id": "string", **SOURCE_COLUMNS}
VERDICT = batches.Verdict("suite", [{"expectation": "e"}])


def _stage(raw: Any, batch: str, ids: list[str], source: str = "kafka") -> transaction.StagedBatch:
    path = data_folder(raw, batch, "f.parquet")
    with raw.io.new_output(path).create(overwrite=True) as fh:
        rows = [{"id": i, "_batch": batch, "_source": source} for i in ids]
        pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(COLUMNS)), fh)
    start = transaction.cursor(transaction.head(raw.refresh()), source)
    return transaction.stage(raw, source=source, batch_id=batch, start_cursor=start, end_cursor=f"{start}+{batch}",
                             files=[path], properties={"mlops.rows": str(len(ids))})  # fmt: skip


def _ids(table: Any) -> list[str]:
    return sorted(table.refresh().scan().to_arrow().column("id").to_pylist())


def test_maintenance_neither_merges_nor_forgets_quarantined_batches(tables: PipelineTables) -> None:
    """N1: compaction merged two held batches' files (a release then copied both) and expiry dropped a held
    batch's snapshot (gone from ``quality list``, never releasable)."""
    raw = tables.raw(COLUMNS)
    for batch, ids in (("q1", ["a", "b"]), ("q2", ["c"])):
        batches.quarantine(tables, raw, _stage(raw, batch, ids), VERDICT)
    report = maintenance.maintain(tables, older_than_days=-1, keep={})  # every snapshot is old
    assert "skipped" in report[tables.ident("raw_quarantine")]["compaction"]
    assert [b["batch"] for b in batches.quarantined(tables)] == ["q1", "q2"]
    batches.release(tables, "q2", by="ana", reason="checked")
    assert _ids(raw) == ["c"] and _ids(tables.load("raw_quarantine")) == ["a", "b"]
    maintenance.maintain(tables, older_than_days=-1, keep={})  # the release's snapshots expire too
    assert [b["batch"] for b in batches.quarantined(tables)] == ["q1"]
    batches.release(tables, "q2", by="ana", reason="checked")  # again: its rows on main tell it was done
    batches.release(tables, "q1", by="ana", reason="checked")
    assert _ids(raw) == ["a", "b", "c"] and batches.quarantined(tables) == []


def test_a_release_copies_only_its_batch_even_from_a_shared_file(tables: PipelineTables) -> None:
    """A quarantine table compacted by another tool (Spark's rewrite_data_files) still releases exactly the batch."""
    raw = tables.raw(COLUMNS)
    for batch, ids in (("q1", ["a"]), ("q2", ["b"])):
        batches.quarantine(tables, raw, _stage(raw, batch, ids), VERDICT)
    held = tables.load("raw_quarantine")
    maintenance.compact_table(held, set())  # both batches' rows now share one file
    assert len(list(held.refresh().scan().plan_files())) == 1
    batches.release(tables, "q1", by="ana", reason="checked")
    assert _ids(raw) == ["a"] and _ids(held) == ["b"]


def _s3(tables: PipelineTables, s3: SimS3, gated: bool = False) -> transaction.StagedBatch:
    result = S3BatchIngest(s3.client(), tables, S3BatchSettings(bucket=BUCKET, prefix=PREFIX, schema={"id": "string",
                           "x": "int"}, backoff_s=0.0, gated=gated)).run()  # fmt: skip
    assert result.staged is not None
    return result.staged


def test_a_changed_object_replaces_its_rows_after_compaction(tables: PipelineTables) -> None:
    """N2: the state file named the object's pre-compaction files; its old rows stayed beside the new ones."""
    s3 = SimS3()
    s3.put("a.csv", 2)
    s3.put("b.csv", 1)
    staged = _s3(tables, s3)
    raw = tables.load("raw")
    batches.publish(tables, raw, staged)
    maintenance.compact_table(raw, set())  # a.csv's and b.csv's rows in one file
    s3.put("a.csv", 3)  # a.csv changes
    batches.publish(tables, raw, _s3(tables, s3))
    rows = raw.refresh().scan().to_arrow().to_pylist()
    assert sorted(r["id"] for r in rows) == ["in/a.csv#2#0", "in/a.csv#2#1", "in/a.csv#2#2", "in/b.csv#1#0"]


def test_a_released_object_version_replaces_the_last_audited_one(tables: PipelineTables) -> None:
    """A changed object whose new version was held keeps its audited rows on main until the new one is released."""
    s3 = SimS3()
    s3.put("a.csv", 1)
    first = _s3(tables, s3, gated=True)
    raw = tables.load("raw")
    batches.publish(tables, raw, first, audited=True)
    s3.put("a.csv", 2)
    batches.quarantine(tables, raw, _s3(tables, s3, gated=True), VERDICT)
    assert _ids(raw) == ["in/a.csv#1#0"]  # the last audited version stays readable
    (held,) = batches.quarantined(tables)
    batches.release(tables, held["batch"], by="ana", reason="checked")
    assert _ids(raw) == ["in/a.csv#2#0", "in/a.csv#2#1"]


def test_a_gated_source_refuses_a_writer_that_publishes_without_the_gate(tables: PipelineTables) -> None:
    """N3: a hand-written DAG with ``publish=True`` published the gated pipeline's staged, unaudited batch."""
    s3 = SimS3()
    s3.put("a.csv", 1)
    staged = _s3(tables, s3, gated=True)  # the pipeline's ingest: staged, waiting for its gate
    raw = tables.load("raw")
    assert transaction.gated_sources(raw.refresh()) == {"s3"}
    with pytest.raises(LakeWriterError, match="decided by a quality gate"):
        _s3(tables, s3, gated=False)  # the other writer is refused before it reads anything
    with pytest.raises(LakeWriterError, match="waits for its quality gate"):
        batches.publish(tables, raw, staged)  # and nobody but the gate publishes the batch
    assert _ids(raw) == []
    batches.publish(tables, raw, staged, audited=True)
    assert _ids(raw) == ["in/a.csv#1#0"]


def test_a_batch_staged_from_a_stale_cursor_is_refused_by_the_catalog(
    tables: PipelineTables, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N8: run B checked the cursor, run A staged and published meanwhile, and B's staging commit (asserting only
    that the branch was absent) created a branch from the old ``main``: every later run failed on it."""
    raw = tables.raw(COLUMNS)
    real_commit = transaction._commit
    raced: list[bool] = []

    def commit_after_another_run(tx: Any, what: str, refs: Any = None) -> None:
        if not raced and what.startswith("staging batch b"):
            raced.append(True)
            batches.publish(tables, raw, _stage(raw, "a", ["x"]))  # run A, start to end, before B's commit
        real_commit(tx, what, refs)

    monkeypatch.setattr(transaction, "_commit", commit_after_another_run)
    with pytest.raises(LakeConflictError):
        _stage(raw, "b", ["x"])
    monkeypatch.undo()
    raw = raw.refresh()
    assert "audit_kafka" not in raw.metadata.refs  # nothing wedged: the next run stages and publishes
    batches.publish(tables, raw, _stage(raw, "c", ["y"]))
    assert _ids(raw) == ["x", "y"]
