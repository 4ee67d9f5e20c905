"""Event triggers that start a pipeline's ingest DAG when its sources have something new (AssetWatchers).

* :class:`S3ArrivalsTrigger`: objects under the prefix that the lake has not ingested (new keys, or changed
  ETags with ``on_change: reingest``), compared with the S3 state ``<pipeline>.raw`` names;
* :class:`KafkaArrivalsTrigger`: partitions whose end offset is past the position in ``raw``'s snapshot
  summary.

Each polls every ``poll_interval`` seconds in the triggerer (blocking calls in a thread, so the event loop
never blocks) and fires once per new state of the source: the same pending objects or offsets don't fire
again while the run they started is still ingesting them. Errors (S3 or Kafka briefly down) are logged and
polling goes on. The ingest itself decides what is new; a spurious event costs one skipped run.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent


def s3_pending(
    *,
    pipeline: str,
    bucket: str,
    prefix: str,
    glob: str,
    on_change: str,
    source_conn_id: str | None,
    iceberg_conn_id: str,
) -> list[str]:
    """Keys (with ETags) the next S3 ingest would read: the ingest's own selection against the lake's state."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from mlops_ops.hooks.iceberg import IcebergCatalogHook
    from mlops_ops.lake import transaction
    from mlops_ops.lake.s3_ingest import S3BatchSettings, list_objects, read_state, select_objects
    from mlops_ops.lake.tables import PipelineTables

    client = S3Hook(aws_conn_id=source_conn_id).get_conn()
    raw = PipelineTables(IcebergCatalogHook(iceberg_conn_id).get_conn(), pipeline).load("raw")
    state = read_state(raw.io, transaction.cursor(transaction.head(raw), "s3")) if raw is not None else {}
    settings = S3BatchSettings(bucket=bucket, prefix=prefix, glob=glob, on_change=on_change)  # type: ignore[arg-type]
    return [f"{o.key}@{o.etag}" for o in select_objects(list_objects(client, bucket, prefix), state, settings)[0]]


def kafka_pending(*, pipeline: str, topics: list[str], kafka_config_id: str, iceberg_conn_id: str) -> list[str]:
    """``topic/partition@end`` of partitions with messages past the lake's position."""
    from confluent_kafka import TopicPartition

    from mlops_ops.hooks.iceberg import IcebergCatalogHook
    from mlops_ops.hooks.kafka import LakeConsumerHook
    from mlops_ops.lake import transaction
    from mlops_ops.lake.kafka_ingest import parse_cursor
    from mlops_ops.lake.tables import PipelineTables

    raw = PipelineTables(IcebergCatalogHook(iceberg_conn_id).get_conn(), pipeline).load("raw")
    cluster, offsets = (
        parse_cursor(transaction.cursor(transaction.head(raw), "kafka")) if raw is not None else (None, {})
    )
    # an unsubscribed consumer (no group membership): watermarks and one fetch are all it needs
    consumer = LakeConsumerHook(topics=topics, group_id=f"mlops-ops.{pipeline}.watch",
                                kafka_config_id=kafka_config_id).get_conn  # fmt: skip
    try:
        if cluster is not None and consumer.list_topics(timeout=10).cluster_id != cluster:
            offsets = {}
        pending = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            for partition in sorted(meta.partitions) if meta is not None and meta.error is None else []:
                tp = TopicPartition(topic, partition)
                low, high = consumer.get_watermark_offsets(tp, timeout=10)
                start = max(offsets.get(f"{topic}/{partition}", low), low)
                if high > start or (high == start and _has_message(consumer, TopicPartition(topic, partition, start))):
                    pending.append(f"{topic}/{partition}@{max(high, start + 1)}")
        return pending
    finally:
        consumer.close()


def _has_message(consumer: Any, tp: Any) -> bool:
    """Whether a message exists at ``tp``'s offset. Some brokers (Tansu) list the last batch's base offset as
    the end, so "end == position" can still hide a batch: one fetch tells."""
    consumer.assign([tp])
    try:
        for msg in consumer.consume(num_messages=1, timeout=2.0):
            if msg.error() is None:
                return True
        return False
    finally:
        consumer.unassign()


class _ArrivalsTrigger(BaseEventTrigger):
    """Polls ``check(**selection)``; yields an event each time the pending set changes to a non-empty one."""

    check: Callable[..., list[str]]
    source: str

    def __init__(self, *, poll_interval: float = 60.0, **selection: Any) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        self.selection = selection

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"poll_interval": self.poll_interval, **self.selection},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self.log.info("watching %s for new data of pipeline %s every %ss", self.source,
                      self.selection.get("pipeline"), self.poll_interval)  # fmt: skip
        fired: str | None = None
        while True:
            try:
                pending = await asyncio.to_thread(type(self).check, **self.selection)
            except Exception as err:  # noqa: BLE001 - a source briefly unreachable: report, keep polling
                self.log.warning(
                    "checking %s for %s failed, will retry: %s", self.source, self.selection.get("pipeline"), err
                )
                pending = None
            if pending is not None:
                fingerprint = hashlib.sha256(json.dumps(sorted(pending)).encode()).hexdigest()
                if pending and fingerprint != fired:
                    fired = fingerprint
                    yield TriggerEvent(
                        {
                            "source": self.source,
                            "pipeline": self.selection.get("pipeline"),
                            "pending": sorted(pending)[:100],
                            "count": len(pending),
                        }
                    )
                elif not pending:
                    fired = None
            await asyncio.sleep(self.poll_interval)


class S3ArrivalsTrigger(_ArrivalsTrigger):
    """New or changed objects under an S3 prefix that ``<pipeline>.raw`` does not hold yet."""

    check = staticmethod(s3_pending)
    source = "s3"


class KafkaArrivalsTrigger(_ArrivalsTrigger):
    """Messages on the pipeline's topics past the position in ``<pipeline>.raw``'s snapshot summary."""

    check = staticmethod(kafka_pending)
    source = "kafka"
