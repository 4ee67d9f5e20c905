"""Kafka consumer for batch ingestion, configured from the Kafka provider's connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook


class LakeConsumerHook(KafkaConsumerHook):
    """The provider's consumer hook (SASL/SSL and callbacks from the connection's extra) with the
    settings exactly-once batch ingestion relies on: our group id, no auto-commit, partition EOF events.
    """

    def __init__(self, *, topics: Sequence[str], group_id: str, kafka_config_id: str = "kafka_default") -> None:
        super().__init__(topics=topics, kafka_config_id=kafka_config_id)
        self.group_id = group_id

    def _get_client(self, config: dict[str, Any]) -> Any:
        from mlops_ops.lake.kafka_ingest import CONSUMER_OVERRIDES

        return super()._get_client({**config, "group.id": self.group_id, **CONSUMER_OVERRIDES})


class ControlConsumerHook(KafkaConsumerHook):
    """A consumer of retraining requests for one pipeline (the control trigger on Airflow before 3.3): a group of its
    own, commits by the trigger, and a new group starts at the end of the topic (old requests are not replayed)."""

    def __init__(self, *, topic: str, group_id: str, kafka_config_id: str = "kafka_default") -> None:
        super().__init__(topics=[topic], kafka_config_id=kafka_config_id)
        self.group_id = group_id

    def _get_client(self, config: dict[str, Any]) -> Any:
        return super()._get_client({**config, "group.id": self.group_id, "enable.auto.commit": False,
                                    "auto.offset.reset": "latest"})  # fmt: skip
