"""``KafkaToLakeOperator``: one bounded, exactly-once batch from Kafka topics into a lake dataset."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_ops.lake.store import DEFAULT_LAKE
from mlops_ops.ui.links import LakeManifestLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)

LAKE_TEMPLATE = "{{ var.value.get('mlops_ops_lake', '" + DEFAULT_LAKE + "') }}"


class KafkaToLakeOperator(BaseOperator):
    """Read each partition from the last committed position up to its end at start, write Parquet to the lake.

    Client settings (bootstrap servers, SASL/SSL, ...) come from the Kafka provider's
    connection ``kafka_config_id``; the group id and commit behaviour are set here.
    Returns ``{"manifest_uri", "rows", "bad"}`` (small metadata only) and, when the
    task has an Asset outlet, attaches the same to its asset event. Nothing new to
    read skips the task, so downstream tasks and asset consumers don't run on nothing.

    :param topics: topics to read.
    :param pipeline: pipeline name; first level of the lake layout.
    :param dataset: dataset name under the pipeline (default ``raw``).
    :param lake: lake URI (``s3://bucket/prefix`` or a local path); default from Variable ``mlops_ops_lake``.
    :param group_id: consumer group for offset commits (default ``mlops-ops.<pipeline>.<dataset>``).
    :param deserializer: ``package.module:function`` turning message bytes into a dict; default JSON.
    :param schema: ``{column: string|int|float|bool|timestamp}``; rows that don't fit are quarantined.
    :param max_bad_share: fail, publishing nothing, when more than this share of messages is malformed.
    :param dead_letter_topic: also send malformed messages there (key ``topic/partition/offset``, headers
        ``mlops.error`` and ``mlops.source_topic``); they are always kept in the lake's quarantine too.
    """

    template_fields: Sequence[str] = ("topics", "lake", "group_id", "pipeline", "dataset", "dead_letter_topic")
    operator_extra_links = (LakeManifestLink(),)
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        topics: Sequence[str],
        pipeline: str,
        dataset: str = "raw",
        lake: str = LAKE_TEMPLATE,
        kafka_config_id: str = "kafka_default",
        aws_conn_id: str | None = "aws_default",
        group_id: str | None = None,
        deserializer: str | None = None,
        schema: dict[str, str] | None = None,
        max_messages: int = 1_000_000,
        rows_per_file: int = 100_000,
        poll_timeout_s: float = 5.0,
        max_bad_share: float = 0.1,
        dead_letter_topic: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topics = list(topics)
        self.pipeline = pipeline
        self.dataset = dataset
        self.lake = lake
        self.kafka_config_id = kafka_config_id
        self.aws_conn_id = aws_conn_id
        self.group_id = group_id
        self.deserializer = deserializer
        self.schema = schema
        self.max_messages = max_messages
        self.rows_per_file = rows_per_file
        self.poll_timeout_s = poll_timeout_s
        self.max_bad_share = max_bad_share
        self.dead_letter_topic = dead_letter_topic

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops_ops import metrics
        from mlops_ops.hooks.kafka import LakeConsumerHook
        from mlops_ops.lake.kafka_ingest import KafkaBatchSettings, consume_into_lake
        from mlops_ops.lake.records import load_decoder
        from mlops_ops.lake.store import Dataset

        group_id = self.group_id or f"mlops-ops.{self.pipeline}.{self.dataset}"
        hook = LakeConsumerHook(topics=self.topics, group_id=group_id, kafka_config_id=self.kafka_config_id)
        dataset = Dataset.at(self.lake, self.pipeline, self.dataset, conn_id=self.aws_conn_id)
        settings = KafkaBatchSettings(
            topics=self.topics,
            decoder=load_decoder(self.deserializer),
            schema=self.schema,
            max_messages=self.max_messages,
            rows_per_file=self.rows_per_file,
            poll_timeout_s=self.poll_timeout_s,
            max_bad_share=self.max_bad_share,
            dead_letter_topic=self.dead_letter_topic,
        )
        make_producer = None
        if self.dead_letter_topic:
            from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook

            make_producer = KafkaProducerHook(kafka_config_id=self.kafka_config_id).get_producer
        result = consume_into_lake(lambda: hook.get_conn, dataset, settings, make_producer)
        if result.manifest_uri is None:
            raise AirflowSkipException(f"no new messages on {', '.join(self.topics)}; nothing ingested")
        summary: dict[str, Any] = {"manifest_uri": result.manifest_uri, "rows": result.rows, "bad": result.bad}
        log.info("ingested %d rows (%d quarantined) into %s", result.rows, result.bad, result.manifest_uri)
        metrics.incr(self.pipeline, "ingest_kafka", "rows", result.rows)
        metrics.incr(self.pipeline, "ingest_kafka", "dead_lettered", result.bad)
        for outlet in self.outlets:
            extra: dict[str, Any] = {**summary, "offsets": result.offsets}
            context["outlet_events"][outlet].extra = extra
        return summary
