"""Run one Kafka -> raw batch the way the ingest DAG does (stage, audit, publish) in this process, and
SIGKILL it at a chosen point (used by the fault tests; a test may also kill it from outside at any time).

usage: python -m tests.integration.kill_ingest TOPIC PIPELINE POINT
POINT: mid-write | after-stage | after-dead-letters | none
"""

from __future__ import annotations

import os
import signal
import sys

from mlops_ops.hooks.kafka import LakeConsumerHook
from mlops_ops.lake import batches, parquet_files, transaction
from mlops_ops.lake.kafka_ingest import KafkaBatchSettings, stage_from_kafka
from mlops_ops.lake.reading import read_files
from mlops_ops.lake.records import json_decoder
from tests.integration.lake_helpers import SCHEMA, pipeline_tables


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(topic: str, pipeline: str, point: str) -> None:
    if point == "mid-write":
        real_flush = parquet_files.RollingParquetWriter._flush
        calls = {"n": 0}

        def flush(self):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 3:
                die()
            return real_flush(self)

        parquet_files.RollingParquetWriter._flush = flush  # type: ignore[method-assign]
    elif point == "after-dead-letters":
        real = batches._dead_letters

        def then_die(tables, staged):  # type: ignore[no-untyped-def]
            real(tables, staged)
            die()

        batches._dead_letters = then_die  # type: ignore[assignment]
    tables = pipeline_tables(pipeline)
    hook = LakeConsumerHook(topics=[topic], group_id=f"g-{pipeline}")
    settings = KafkaBatchSettings(topics=[topic], decoder=json_decoder, schema=SCHEMA, rows_per_file=250,
                                  rows_per_group=100, poll_timeout_s=10)  # fmt: skip
    result = stage_from_kafka(lambda: hook.get_conn, tables, settings)
    if result.staged is None:
        print("rows=0")
        return
    if point == "after-stage":
        die()
    raw = tables.load("raw")
    audited = read_files(raw.io, transaction.batch_files(raw, result.staged))  # the audit reads exactly the batch
    assert len(audited) == result.rows
    batches.publish(tables, raw, result.staged)
    print(f"rows={result.rows}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
