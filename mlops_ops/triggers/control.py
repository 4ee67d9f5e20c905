"""Retraining requests from a Kafka control topic, for an ``AssetWatcher`` (Airflow 3 event-driven scheduling).

Built on the Kafka provider's shared-stream consumer (``KafkaSharedStreamProducer``, Airflow 3.3+):
one long-lived consumer per topic and connection in the triggerer, broadcast to every pipeline
watching that topic, with offsets committed only after the run-creating Asset events are stored
(at least once; a triggerer that dies in between re-reads the request). The provider's older
``MessageQueueTrigger`` ends after one event, so the triggerer restarts it and its consumer
rejoins the group for every request: seconds to tens of seconds per run, see
``bench/control_latency.py``. The provider is imported only in the triggerer: DAG files must
parse without confluent-kafka. The connection must set ``enable.auto.commit: false``.

On Airflow before 3.3 (no shared streams) the triggerer calls :meth:`ControlTopicTrigger.run`, which reads the
topic with a consumer group of its own per pipeline.

A request is a JSON object ``{"pipeline": "<name>", "reason": "..."}`` of at most ``MAX_MESSAGE`` bytes.
Requests for other pipelines are passed over; messages that are not such an object (too large, not
UTF-8, not JSON, nested beyond Python's recursion limit, no string ``pipeline``) are rejected
(logged, committed past). Neither starts a run, and no message can stop the trigger.

**Cool-down** (``retrain.control_cooldown``, default 1h): a request within that time after the last one this
trigger served is passed over (logged with the time the cool-down ends), so whoever can produce to the topic cannot
keep retraining running back to back. The time of the last served request lives in the trigger: a restarted
triggerer serves the next request at once (at most one extra run per restart).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Hashable
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)
MAX_REASON = 500
MAX_MESSAGE = 64 * 1024  # a request is a few hundred bytes: anything this large is not one


class MalformedRequest(ValueError):
    """A control message that is not ``{"pipeline": "<name>", ...}``."""


def parse_request(raw: bytes | str | None, *, pipeline: str, topic: str) -> dict[str, Any] | None:
    """The retraining request in ``raw`` if it is meant for ``pipeline``; ``None`` if it is for another one.

    Raises ``MalformedRequest`` when ``raw`` is not a JSON object with a string ``pipeline``, and for nothing else:
    the trigger's consumer would die on any other exception and meet the same message again after every restart.
    """
    if raw is not None and len(raw) > MAX_MESSAGE:
        raise MalformedRequest(f"{len(raw)} bytes, more than a request's limit of {MAX_MESSAGE}")
    try:
        body = json.loads(raw) if raw is not None else None
    except (ValueError, UnicodeDecodeError) as err:
        raise MalformedRequest(f"not JSON ({err})") from err
    except RecursionError as err:  # `[[[[...` nested past the interpreter's limit
        raise MalformedRequest("not JSON (nested deeper than a request can be)") from err
    if not isinstance(body, dict) or not isinstance(body.get("pipeline"), str):
        raise MalformedRequest("expected an object with a string 'pipeline'")
    if body["pipeline"] != pipeline:
        log.info("control topic %s: request for pipeline '%s', not '%s': passed over", topic, body["pipeline"],
                 pipeline)  # fmt: skip
        return None
    reason = body.get("reason", "")
    if isinstance(reason, dict | list):
        raise MalformedRequest("'reason' must be a string")
    # lone surrogates (JSON's "\ud800") cannot be encoded into the event Airflow stores: escaped
    reason = str(reason)[:MAX_REASON].encode("utf-8", "backslashreplace").decode("utf-8")
    log.info("retraining requested for %s on control topic %s: %s", pipeline, topic, reason)
    return {"pipeline": pipeline, "reason": reason, "topic": topic}


class ControlTopicTrigger(BaseEventTrigger):
    """Fires once per retraining request for ``pipeline`` read from ``topic``, at most once per ``cooldown_s``."""

    def __init__(self, *, pipeline: str, topic: str, kafka_config_id: str = "kafka_default",
                 poll_interval: float = 1.0, cooldown_s: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.pipeline = pipeline
        self.topic = topic
        self.kafka_config_id = kafka_config_id
        self.poll_interval = poll_interval
        self.cooldown_s = cooldown_s
        self._served_at: float | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"pipeline": self.pipeline, "topic": self.topic, "kafka_config_id": self.kafka_config_id,
             "poll_interval": self.poll_interval, "cooldown_s": self.cooldown_s},
        )  # fmt: skip

    def _serve(self, request: dict[str, Any] | None) -> TriggerEvent | None:
        """The event for ``request``, or ``None`` when it is for another pipeline or the cool-down runs."""
        if request is None:
            return None
        now = time.monotonic()
        if self._served_at is not None and now - self._served_at < self.cooldown_s:
            left = self.cooldown_s - (now - self._served_at)
            log.warning("control topic %s: retraining request for %s passed over: the control cool-down (%.0f s) "
                        "runs %.0f s more (reason given: %s)", self.topic, self.pipeline, self.cooldown_s, left,
                        request["reason"])  # fmt: skip
            return None
        self._served_at = now
        return TriggerEvent(request)

    def shared_stream_key(self) -> Hashable:
        """Pipelines watching the same topic through the same connection share one consumer."""
        return "mlops-ops-control", self.topic, self.kafka_config_id

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> Any:
        from airflow.providers.apache.kafka.triggers.shared_stream import KafkaSharedStreamProducer

        return KafkaSharedStreamProducer(topics=[kwargs["topic"]], kafka_config_id=kwargs["kafka_config_id"],
                                         poll_timeout=kwargs["poll_interval"])  # fmt: skip

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        from airflow.triggers.shared_stream import reject_shared_stream_event

        async for raw in shared_stream:
            try:
                request = parse_request(raw, pipeline=self.pipeline, topic=self.topic)
            except MalformedRequest as err:
                log.warning("ignored control message on %s: %s", self.topic, err)
                reject_shared_stream_event()
                continue
            event = self._serve(request)
            if event is not None:
                yield event

    def fallback_group(self) -> str:
        """The consumer group of :meth:`run`: one per pipeline, so no pipeline's consumer passes over (and commits)
        another's request."""
        return f"mlops-ops.{self.pipeline}.control"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Airflow before 3.3 has no shared streams: the triggerer runs this instead, a consumer of this trigger's own
        (group :meth:`fallback_group`; a new group starts at the topic's end, so requests sent before the watcher
        first ran are not replayed). A message's offset is committed once the triggerer asks for the next event,
        that is after it took this one: a triggerer killed in between re-reads the request at its restart."""
        import asyncio

        from mlops_ops.hooks.kafka import ControlConsumerHook

        group = self.fallback_group()
        hook = ControlConsumerHook(topic=self.topic, group_id=group, kafka_config_id=self.kafka_config_id)
        consumer = await asyncio.to_thread(hook.get_consumer)
        try:
            while True:
                message = await asyncio.to_thread(consumer.poll, self.poll_interval)
                if message is None:
                    continue
                if message.error():
                    log.warning("control topic %s: %s", self.topic, message.error())
                    continue
                try:
                    request = parse_request(message.value(), pipeline=self.pipeline, topic=self.topic)
                except MalformedRequest as err:
                    log.warning("ignored control message on %s: %s", self.topic, err)
                    request = None
                event = self._serve(request)
                if event is not None:
                    yield event
                await asyncio.to_thread(consumer.commit, message=message, asynchronous=False)
        finally:
            await asyncio.to_thread(consumer.close)
