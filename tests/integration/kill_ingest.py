"""Run one Kafka -> lake batch and SIGKILL this very process at a chosen point (used by the fault tests).

usage: python -m tests.integration.kill_ingest TOPIC LAKE PIPELINE POINT
POINT: mid-write | before-commit | before-kafka-commit | none
"""

from __future__ import annotations

import os
import signal
import sys

from mlops_ops.hooks.kafka import LakeConsumerHook
from mlops_ops.lake import kafka_ingest, parquet_files
from mlops_ops.lake.kafka_ingest import KafkaBatchSettings, consume_into_lake
from mlops_ops.lake.records import json_decoder
from mlops_ops.lake.store import Dataset
from tests.integration.lake_helpers import SCHEMA


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def main(topic: str, lake: str, pipeline: str, point: str) -> None:
    if point == "mid-write":
        real_flush = parquet_files.RollingParquetWriter._flush
        calls = {"n": 0}

        def flush(self):  # type: ignore[no-untyped-def]
            calls["n"] += 1
            if calls["n"] == 3:
                die()
            return real_flush(self)

        parquet_files.RollingParquetWriter._flush = flush  # type: ignore[method-assign]
    elif point == "before-commit":
        real_write = Dataset.write_json

        def write_json(self, obj, *parts):  # type: ignore[no-untyped-def]
            if parts[0] == "_state":
                die()
            return real_write(self, obj, *parts)

        Dataset.write_json = write_json  # type: ignore[method-assign]
    elif point == "before-kafka-commit":
        kafka_ingest.KafkaBatchIngest._commit_kafka = lambda self, covered: die()  # type: ignore[method-assign]
    dataset = Dataset.at(lake, pipeline, "raw", conn_id="aws_default")
    hook = LakeConsumerHook(topics=[topic], group_id=f"g-{pipeline}")
    settings = KafkaBatchSettings(topics=[topic], decoder=json_decoder, schema=SCHEMA, rows_per_file=250,
                                  rows_per_group=100, poll_timeout_s=10)  # fmt: skip
    result = consume_into_lake(lambda: hook.get_conn, dataset, settings)
    print(f"rows={result.rows}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
