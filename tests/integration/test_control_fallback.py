"""The control trigger on Airflow before 3.3 (no shared streams): ``ControlTopicTrigger.run`` reads the topic with a
consumer group of its own per pipeline, against the real broker."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from unittest import mock

from mlops_ops.hooks.kafka import ControlConsumerHook
from mlops_ops.triggers.control import ControlTopicTrigger


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(15) == 0


async def _events(trigger: ControlTopicTrigger, bootstrap: str, topic: str, send: list[bytes],
                  want: int, timeout: float = 60) -> list[dict[str, Any]]:  # fmt: skip
    """Start the trigger, send once its consumer reads the topic's live end (it consumed a probe: a request for
    another pipeline, passed over), collect ``want`` events (then 3 s more)."""
    seen: list[dict[str, Any]] = []
    consumers: list[Any] = []
    real = ControlConsumerHook.get_consumer

    def keep(hook: ControlConsumerHook) -> Any:
        consumers.append(real(hook))
        return consumers[-1]

    async def consume() -> None:
        with mock.patch.object(ControlConsumerHook, "get_consumer", keep):
            async for event in trigger.run():
                seen.append(event.payload)

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + timeout
    probe = json.dumps({"pipeline": "join_probe", "reason": "probe"}).encode()
    while not _consumed(consumers):  # the new group joined and starts at the end of the topic: probes until it reads
        assert time.monotonic() < deadline and not task.done(), "the trigger's consumer never joined its group"
        await asyncio.to_thread(_produce, bootstrap, topic, [probe])
        await asyncio.sleep(1)
    if send:
        await asyncio.to_thread(_produce, bootstrap, topic, send)
    deadline = time.monotonic() + timeout
    while len(seen) < want and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(3)  # nothing more may come
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    return seen


def _consumed(consumers: list[Any]) -> bool:
    """The trigger's consumer took a message (its position is past one): it reads what is produced from now on."""
    if not consumers or not (assigned := consumers[0].assignment()):
        return False
    return any(p.offset >= 0 for p in consumers[0].position(assigned))


def test_the_fallback_consumer_fires_once_per_request_and_commits(stack, bootstrap: str) -> None:
    import uuid

    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"control-{uuid.uuid4().hex[:10]}"  # one partition: the restarted trigger resumes from its commit
    admin = AdminClient({"bootstrap.servers": bootstrap})  # held while the request runs
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(10)
    trigger = ControlTopicTrigger(pipeline="churn", topic=topic)
    other = ControlTopicTrigger(pipeline="fraud", topic=topic)
    assert trigger.fallback_group() != other.fallback_group()  # no pipeline commits past another's request
    send = [b"not json", json.dumps({"pipeline": "fraud", "reason": "x"}).encode(),
            json.dumps({"pipeline": "churn", "reason": "new labels"}).encode()]  # fmt: skip
    first = asyncio.run(_events(trigger, bootstrap, topic, send, want=1))
    assert first == [{"pipeline": "churn", "reason": "new labels", "topic": topic}]

    # a request sent while the triggerer is down is read at its restart (from the committed offset); what the first
    # trigger took does not fire again
    _produce(bootstrap, topic, [json.dumps({"pipeline": "churn", "reason": "while down"}).encode()])
    again = asyncio.run(_events(trigger, bootstrap, topic, [], want=1))
    assert again == [{"pipeline": "churn", "reason": "while down", "topic": topic}]
