"""``mlops-ops lake maintain`` against a real local catalog: what it expires, what it keeps, compaction."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlops_ops.lake import batches, maintenance, transaction
from mlops_ops.lake.features import RAW_SNAPSHOT_KEY
from mlops_ops.lake.reading import added_since
from mlops_ops.lake.tables import SOURCE_COLUMNS, PipelineTables, arrow_schema, data_folder

COLUMNS = {"id": "string", **SOURCE_COLUMNS}


def _publish(tables: PipelineTables, raw: Any, batch: str, ids: list[str]) -> int:
    path = data_folder(raw, batch, "f.parquet")
    with raw.io.new_output(path).create(overwrite=True) as fh:
        pq.write_table(
            pa.Table.from_pylist([{"id": i, "_batch": batch} for i in ids], schema=arrow_schema(COLUMNS)), fh
        )
    start = transaction.cursor(transaction.head(raw.refresh()), "s3")
    staged = transaction.stage(raw, source="s3", batch_id=batch, start_cursor=start, end_cursor=batch, files=[path])
    return batches.publish(tables, raw, staged)


def test_maintain_keeps_what_models_and_readers_need_and_compacts(tables: PipelineTables) -> None:
    raw = tables.raw(COLUMNS)
    ids = [_publish(tables, raw, f"b{i}", [f"r{i}"]) for i in range(6)]
    # a features build read raw up to the 4th batch; a model version names the 2nd raw snapshot
    features = tables.ensure("features", arrow_schema({"id": "string"}))
    transaction.commit_properties(features, {RAW_SNAPSHOT_KEY: str(ids[3])})
    keep = {tables.ident("raw"): {ids[1]}}
    report = maintenance.maintain(tables, older_than_days=-1, keep=keep)  # every snapshot is "old"
    raw = raw.refresh()
    kept = {s.snapshot_id for s in raw.snapshots()}
    assert ids[1] in kept  # named by a model version
    assert {ids[3], ids[4], ids[5]} <= kept  # raw's history back to the oldest reader position
    assert ids[0] not in kept and ids[2] not in kept  # nothing needs these
    assert report[tables.ident("raw")]["compaction"]["rewritten"] == 4  # files older than the reader position
    assert sorted(r["id"] for r in raw.scan().to_arrow().to_pylist()) == [f"r{i}" for i in range(6)]  # same rows
    head = transaction.head(raw)
    assert transaction.summary_of(head)[transaction.DECISION_KEY] == "compaction"
    assert transaction.cursor(head, "s3") == "b5"  # positions carried through the compaction
    # the compaction touched only files read before the reader's position: an incremental read sees no change
    _publish(tables, raw, "b6", ["r6"])
    new, append_only = added_since(raw.refresh(), ids[3], transaction.head(raw.refresh()).snapshot_id)
    assert append_only and len(new) == 3  # b4, b5 and b6: compaction rewrote nothing after the position
