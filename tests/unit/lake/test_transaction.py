"""The lake's commit protocol against a real Iceberg SQL catalog (SQLite, files on this disk)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_ops.exceptions import LakeConflictError
from mlops_ops.lake import batches, transaction
from mlops_ops.lake.tables import SOURCE_COLUMNS, PipelineTables, arrow_schema, data_folder

COLUMNS = {"id": "string", "n": "int", **SOURCE_COLUMNS}


def _file(table: Any, batch: str, ids: list[str], name: str = "f") -> str:
    path = data_folder(table, batch, f"{name}.parquet")
    rows = [{"id": i, "n": k, "_batch": batch, "_source": "kafka"} for k, i in enumerate(ids)]
    with table.io.new_output(path).create(overwrite=True) as fh:
        pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(COLUMNS)), fh)
    return path


def _ids(table: Any) -> list[str]:
    return sorted(table.refresh().scan().to_arrow().column("id").to_pylist())


def _stage(table: Any, batch: str, start: str, end: str, ids: list[str]) -> transaction.StagedBatch:
    return transaction.stage(table, source="kafka", batch_id=batch, start_cursor=start, end_cursor=end,
                             files=[_file(table, batch, ids)], properties={"mlops.rows": str(len(ids))})  # fmt: skip


def test_staged_batch_is_invisible_until_published(tables: PipelineTables) -> None:
    raw = tables.raw(COLUMNS)
    staged = _stage(raw, "b1", "", "1", ["a", "b"])
    assert _ids(raw) == []  # readers of main see nothing
    assert transaction.pending(raw.refresh(), "kafka") == staged
    assert transaction.batch_files(raw.refresh(), staged) == [_file(raw, "b1", ["a", "b"])]
    published = batches.publish(tables, raw, staged)
    raw = raw.refresh()
    assert _ids(raw) == ["a", "b"] and published == staged.snapshot_id  # fast-forward: the audited snapshot
    assert transaction.pending(raw, "kafka") is None and "audit_kafka" not in raw.metadata.refs
    assert transaction.cursor(transaction.head(raw), "kafka") == "1"
    assert batches.publish(tables, raw, staged) == published  # a replay after a crash changes nothing


def test_two_writers_from_the_same_start_one_commits(tables: PipelineTables) -> None:
    """Forced race: both load the table at the same start; the catalog refuses the second commit."""
    raw = tables.raw(COLUMNS)
    first, second = tables.load("raw"), tables.load("raw")  # both at the same snapshot
    files_a, files_b = [_file(raw, "a", ["x1"], "a")], [_file(raw, "b", ["x1"], "b")]
    transaction.stage(first, source="kafka", batch_id="a", start_cursor="", end_cursor="1", files=files_a)
    with pytest.raises(LakeConflictError):
        # stage() refreshes, so force the stale view the way two processes racing inside the commit have it
        tx = second.transaction()
        from pyiceberg.table.update.snapshot import ManageSnapshots

        ManageSnapshots(tx).create_branch(transaction.head(second).snapshot_id, "audit_kafka").commit()
        with tx.update_snapshot(branch="audit_kafka").fast_append() as update:
            for entry in transaction.data_files(second, files_b):
                update.append_data_file(entry)
        transaction._commit(tx, "the loser")
    # the loser's retry goes through stage(): it finds the winner's batch staged and refuses to stage another
    with pytest.raises(LakeConflictError, match="staged on audit_kafka"):
        transaction.stage(second, source="kafka", batch_id="b", start_cursor="", end_cursor="1", files=files_b)
    batches.publish(tables, raw, transaction.pending(raw.refresh(), "kafka"))  # type: ignore[arg-type]
    # ... and once the winner is published, its start position is gone
    with pytest.raises(LakeConflictError, match="moved"):
        transaction.stage(second, source="kafka", batch_id="b", start_cursor="", end_cursor="1", files=files_b)
    assert _ids(raw) == ["x1"]  # once


def test_publish_on_top_of_another_source_keeps_both_cursors(tables: PipelineTables) -> None:
    raw = tables.raw(COLUMNS)
    kafka = _stage(raw, "k1", "", "k-end", ["k"])
    s3 = transaction.stage(raw, source="s3", batch_id="s1", start_cursor="", end_cursor="s-end",
                           files=[_file(raw, "s1", ["s"])])  # fmt: skip
    batches.publish(tables, raw, s3)
    batches.publish(tables, raw, kafka)  # main moved since kafka was staged: the same files on top of it
    head = transaction.head(raw.refresh())
    assert _ids(raw) == ["k", "s"]
    assert transaction.cursor(head, "kafka") == "k-end" and transaction.cursor(head, "s3") == "s-end"


def test_quarantine_moves_the_position_without_the_rows_and_release_publishes_them(tables: PipelineTables) -> None:
    raw = tables.raw(COLUMNS)
    staged = _stage(raw, "bad1", "", "1", ["q1", "q2"])
    verdict = batches.Verdict("suite", [{"expectation": "e", "column": "id"}], "docs/page.html", "run-1")
    batches.quarantine(tables, raw, staged, verdict)
    batches.quarantine(tables, raw, staged, verdict)  # replayed after a crash: nothing twice
    raw = raw.refresh()
    assert _ids(raw) == [] and transaction.cursor(transaction.head(raw), "kafka") == "1"
    held = tables.load("raw_quarantine")
    assert _ids(held) == ["q1", "q2"]
    (record,) = batches.quarantined(tables)
    assert record["batch"] == "bad1" and record["failures"][0]["column"] == "id" and record["docs"] == "docs/page.html"
    with pytest.raises(ValueError, match="who releases"):
        batches.release(tables, "bad1", by=" ", reason="x")
    with pytest.raises(LookupError, match="quarantined batches: bad1"):
        batches.release(tables, "nope", by="ana", reason="x")
    batches.release(tables, "bad1", by="ana", reason="values checked by hand")
    batches.release(tables, "bad1", by="ana", reason="values checked by hand")  # idempotent
    raw = raw.refresh()
    assert _ids(raw) == ["q1", "q2"] and _ids(held) == [] and batches.quarantined(tables) == []
    summary = transaction.summary_of(transaction.head(raw))
    assert summary["mlops.released-by"] == "ana" and summary["mlops.released-batch"] == "bad1"
    assert transaction.cursor(transaction.head(raw), "kafka") == "1"  # positions carried through every commit


def test_dead_letters_are_committed_with_the_decision_once(tables: PipelineTables) -> None:
    raw = tables.raw(COLUMNS)
    dead = tables.dead_letters()
    path = data_folder(dead, "b1", "dl.parquet")
    with dead.io.new_output(path).create(overwrite=True) as fh:
        pq.write_table(pa.Table.from_pylist([{"_offset": 7, "error": "bad", "_batch": "b1"}],
                                            schema=arrow_schema(batches_dead_columns())), fh)  # fmt: skip
    staged = transaction.stage(raw, source="kafka", batch_id="b1", start_cursor="", end_cursor="1",
                               files=[_file(raw, "b1", ["a"])],
                               properties={batches.DEAD_LETTER_FILES_KEY: transaction.json_value([path])})  # fmt: skip
    assert dead.refresh().scan().to_arrow().num_rows == 0  # undecided: not there yet
    batches._dead_letters(tables, staged)  # a crash right after this, before publishing ...
    batches.publish(tables, raw, staged)  # ... and the replay
    assert dead.refresh().scan().to_arrow().column("_offset").to_pylist() == [7]


def test_only_a_batch_that_changes_raw_emits_the_raw_asset_event(tables: PipelineTables) -> None:
    """The publishing task (ingest without a gate, else the gate) skips, so emits no Asset event, for batches that
    leave what readers of raw get unchanged: dead letters or positions only (N19)."""
    raw = tables.raw(COLUMNS)
    rows = _stage(raw, "r1", "", "1", ["a"])
    assert batches.changes_rows(rows)
    batches.publish(tables, raw, rows)
    dead_only = transaction.stage(raw, source="kafka", batch_id="d1", start_cursor="1", end_cursor="2", files=[],
                                  properties={"mlops.rows": "0", "mlops.bad": "5"})  # fmt: skip
    assert not batches.changes_rows(dead_only)
    assert "batch d1 published without rows (5 dead letter(s)" in batches.unchanged_message(dead_only)
    batches.publish(tables, raw, dead_only)
    replacing = transaction.stage(raw, source="s3", batch_id="s1", start_cursor="", end_cursor="s", files=[],
                                  properties={"mlops.rows": "0", "mlops.s3.replaced-objects": "1"})  # fmt: skip
    assert batches.changes_rows(replacing)  # an object's old rows are gone: readers see a change


def batches_dead_columns() -> dict[str, str]:
    from mlops_ops.lake.tables import DEAD_LETTER_COLUMNS

    return DEAD_LETTER_COLUMNS


def test_conditional_commit_refuses_a_moved_table(tables: PipelineTables) -> None:
    features = tables.ensure("features", arrow_schema(COLUMNS))
    start = transaction.head(features).snapshot_id
    transaction.commit_files(features, "f1", [_file(features, "f1", ["a"])], {}, expected_head=start, replace=False)
    with pytest.raises(LakeConflictError):
        transaction.commit_files(features, "f2", [_file(features, "f2", ["b"])], {}, expected_head=start,
                                 replace=True)  # fmt: skip
    head = transaction.head(features.refresh()).snapshot_id
    transaction.commit_files(features, "f3", [_file(features, "f3", ["c"])], {}, expected_head=head, replace=True)
    assert _ids(features) == ["c"]


def test_our_tables_never_retry_a_commit_on_top_of_a_winner(tables: PipelineTables) -> None:
    """pyiceberg retries commits by re-applying them on the new head by default: exactly what must not happen."""
    raw = tables.raw(COLUMNS)
    assert raw.properties["commit.retry.num-retries"] == "0"
    assert "schema.name-mapping.default" in raw.properties


def test_a_race_inside_stage_is_decided_by_the_catalog(tables: PipelineTables, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two writers pass every check in ``stage()`` at the same time (a barrier after the checks, before the
    commit): the catalog's requirement makes exactly one commit; the other fails with nothing visible."""
    import threading

    raw = tables.raw(COLUMNS)
    files = {"a": [_file(raw, "a", ["x"], "a")], "b": [_file(raw, "b", ["x"], "b")]}
    barrier = threading.Barrier(2, timeout=20)
    real = transaction.data_files

    def both_checked(table: Any, paths: list[str]) -> list[Any]:
        barrier.wait()
        return real(table, paths)

    monkeypatch.setattr(transaction, "data_files", both_checked)
    outcome: dict[str, Any] = {}

    def write(name: str) -> None:
        try:
            outcome[name] = transaction.stage(tables.load("raw"), source="kafka", batch_id=name, start_cursor="",
                                              end_cursor="1", files=files[name])  # fmt: skip
        except LakeConflictError as err:
            outcome[name] = err

    threads = [threading.Thread(target=write, args=(n,)) for n in files]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [n for n, v in outcome.items() if isinstance(v, transaction.StagedBatch)]
    lost = [n for n, v in outcome.items() if isinstance(v, LakeConflictError)]
    assert len(won) == 1 and len(lost) == 1, outcome
    monkeypatch.setattr(transaction, "data_files", real)
    batches.publish(tables, raw, outcome[won[0]])
    assert _ids(raw) == ["x"]
