"""Retraining requests from a Kafka control topic, for an ``AssetWatcher`` (Airflow 3 event-driven scheduling).

The work is done by the Kafka provider's message-queue trigger (``MessageQueueTrigger``
with scheme ``kafka``). This class only wraps it: importing that trigger loads every
message-queue provider (confluent-kafka, boto3) and DAG files must parse without them,
so the provider's trigger is built in the triggerer, when ``run`` starts.

A request is a JSON object ``{"pipeline": "<name>", "reason": "..."}``. Messages for
other pipelines, or that are not such an object, are logged and ignored; the consumer
moves past them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)
MAX_REASON = 500


def accept_message(message: Any, *, pipeline: str) -> dict[str, Any] | None:
    """The request in ``message`` if it is meant for ``pipeline``, else ``None`` (with a log line saying why)."""
    where = f"{message.topic()}[{message.partition()}]@{message.offset()}"
    raw = message.value()
    try:
        body = json.loads(raw) if raw is not None else None
    except (ValueError, UnicodeDecodeError) as err:
        log.warning("ignored control message %s: not JSON (%s)", where, err)
        return None
    if not isinstance(body, dict) or not isinstance(body.get("pipeline"), str):
        log.warning("ignored control message %s: expected an object with a string 'pipeline'", where)
        return None
    if body["pipeline"] != pipeline:
        log.info("ignored control message %s: for pipeline '%s', not '%s'", where, body["pipeline"], pipeline)
        return None
    reason = body.get("reason", "")
    request = {"pipeline": pipeline, "reason": str(reason)[:MAX_REASON], "source": where}
    log.info("retraining requested for %s by control message %s: %s", pipeline, where, request["reason"])
    return request


class ControlTopicTrigger(BaseEventTrigger):
    """Fires once per retraining request for ``pipeline`` read from ``topic``."""

    def __init__(self, *, pipeline: str, topic: str, kafka_config_id: str = "kafka_default",
                 poll_interval: float = 1.0) -> None:  # fmt: skip
        super().__init__()
        self.pipeline = pipeline
        self.topic = topic
        self.kafka_config_id = kafka_config_id
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"pipeline": self.pipeline, "topic": self.topic, "kafka_config_id": self.kafka_config_id,
             "poll_interval": self.poll_interval},
        )  # fmt: skip

    def provider_trigger(self) -> Any:
        """The Kafka provider's message-queue trigger that does the consuming."""
        from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger

        return MessageQueueTrigger(
            scheme="kafka",
            topics=[self.topic],
            kafka_config_id=self.kafka_config_id,
            apply_function=f"{__name__}.accept_message",
            apply_function_kwargs={"pipeline": self.pipeline},
            poll_interval=self.poll_interval,
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        async for event in self.provider_trigger().run():
            yield event
