"""``KafkaToLakeOperator``: one bounded batch from Kafka topics into ``<pipeline>.raw``, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from mlops_ops.operators.base import LakeOperator
from mlops_ops.ui.links import LakeSnapshotLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


class KafkaToLakeOperator(LakeOperator):
    """Read each partition from the lake's committed position up to its end at start; stage the batch on
    ``raw@audit_kafka`` and, with ``publish=True`` (no quality gate), publish it.

    Client settings (bootstrap servers, SASL/SSL, ...) come from the Kafka provider's connection
    ``kafka_config_id``. Returns ``{"batch", "snapshot_id", "published", "rows", "bad", "offsets", "gaps"}``
    (small metadata only). Nothing new skips the task, so downstream tasks and asset consumers don't run on
    nothing. A batch already staged (its gate died) is handed on instead of reading more.

    :param topics: topics to read.
    :param group_id: consumer group whose offsets mirror the lake's (lag monitoring only); default
        ``mlops-ops.<pipeline>.raw``.
    :param deserializer: ``package.module:function`` turning message bytes into a dict; default JSON.
    :param schema: ``{column: string|int|float|bool|timestamp}``; messages that don't fit are dead letters.
        Without one, columns keep the type they were first seen with.
    :param max_bad_share: fail, committing nothing, when more than this share of messages are dead letters.
    :param max_value_bytes: larger messages are dead letters (their first ``max_value_bytes`` are kept).
    :param on_gap: ``warn`` (default) or ``fail`` when messages expired from Kafka before the lake read them.
    :param dead_letter_topic: also send dead letters there (key ``topic/partition/offset``, headers
        ``mlops.error`` and ``mlops.source_topic``); they are always kept in ``<pipeline>.raw_dead_letters``.
    """

    template_fields: Sequence[str] = ("topics", "group_id", "pipeline", "dead_letter_topic")
    operator_extra_links = (LakeSnapshotLink(),)
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        topics: Sequence[str],
        kafka_config_id: str = "kafka_default",
        group_id: str | None = None,
        deserializer: str | None = None,
        schema: dict[str, str] | None = None,
        max_messages: int = 1_000_000,
        rows_per_file: int = 100_000,
        poll_timeout_s: float = 5.0,
        max_bad_share: float = 0.1,
        max_value_bytes: int = 1 << 20,
        on_gap: Literal["warn", "fail"] = "warn",
        dead_letter_topic: str | None = None,
        publish: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topics = list(topics)
        self.kafka_config_id = kafka_config_id
        self.group_id = group_id
        self.deserializer = deserializer
        self.schema = schema
        self.max_messages = max_messages
        self.rows_per_file = rows_per_file
        self.poll_timeout_s = poll_timeout_s
        self.max_bad_share = max_bad_share
        self.max_value_bytes = max_value_bytes
        self.on_gap = on_gap
        self.dead_letter_topic = dead_letter_topic
        self.publish = publish

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops._compat import airflow_exception

        AirflowSkipException = airflow_exception("AirflowSkipException")

        from mlops_ops import metrics
        from mlops_ops.exceptions import LakeWriterError
        from mlops_ops.hooks.kafka import LakeConsumerHook
        from mlops_ops.lake import batches
        from mlops_ops.lake.kafka_ingest import KafkaBatchSettings, stage_from_kafka
        from mlops_ops.lake.records import load_decoder

        group_id = self.group_id or f"mlops-ops.{self.pipeline}.raw"
        hook = LakeConsumerHook(topics=self.topics, group_id=group_id, kafka_config_id=self.kafka_config_id)
        tables = self.tables()
        settings = KafkaBatchSettings(
            topics=self.topics,
            decoder=load_decoder(self.deserializer),
            schema=self.schema,
            max_messages=self.max_messages,
            rows_per_file=self.rows_per_file,
            poll_timeout_s=self.poll_timeout_s,
            max_bad_share=self.max_bad_share,
            max_value_bytes=self.max_value_bytes,
            on_gap=self.on_gap,
            dead_letter_topic=self.dead_letter_topic,
            gated=not self.publish,
        )
        make_producer = None
        if self.dead_letter_topic:
            from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook

            make_producer = KafkaProducerHook(kafka_config_id=self.kafka_config_id).get_producer
        published: list[int] = []

        def publish(staged: Any) -> None:
            published.append(batches.publish(tables, tables.load("raw"), staged))

        try:
            result = stage_from_kafka(lambda: hook.get_conn, tables, settings, make_producer,
                                      publish if self.publish else None)  # fmt: skip
        except LakeWriterError as err:  # another writer's table: a retry gets the same answer
            raise airflow_exception("AirflowFailException")(str(err)) from err
        if result.staged is None:
            raise AirflowSkipException(f"no new messages on {', '.join(self.topics)}; nothing ingested")
        snapshot_id = published[0] if published else result.staged.snapshot_id
        summary: dict[str, Any] = {
            "table": tables.ident("raw"),
            "batch": result.staged.batch_id,
            "snapshot_id": snapshot_id,
            "published": self.publish,
            "rows": result.rows,
            "bad": result.bad,
            "offsets": result.offsets,
            "gaps": result.gaps,
            "resumed": result.resumed,
        }
        log.info(
            "%s batch %s: %d rows, %d dead letters%s",
            "published" if self.publish else "staged",
            result.staged.batch_id,
            result.rows,
            result.bad,
            " (resumed)" if result.resumed else "",
        )
        if not result.resumed:
            metrics.incr(self.pipeline, "ingest_kafka", "rows", result.rows)
            metrics.incr(self.pipeline, "ingest_kafka", "dead_lettered", result.bad)
            metrics.incr(self.pipeline, "ingest_kafka", "retention_gap", sum(result.gaps.values()))
        if self.publish and not batches.changes_rows(result.staged):  # a task that succeeds emits its outlets
            raise AirflowSkipException(batches.unchanged_message(result.staged))
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = summary
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the topics with the batch's offset ranges -> ``raw`` at the snapshot written."""
        from mlops_ops.lineage import openlineage as ol
        from mlops_ops.operators import openlineage as emit

        result = emit.task_result(task_instance)
        if not result:
            return None
        lineage = ol.kafka_ingest(result, bootstrap=emit.bootstrap(self.kafka_config_id),
                                  catalog=emit.catalog(self.iceberg_conn_id))  # fmt: skip
        return emit.as_operator_lineage(lineage)
