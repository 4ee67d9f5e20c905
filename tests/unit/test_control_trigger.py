"""The control-topic trigger: request parsing, filtering of the shared stream, consumer sharing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mlops_ops.triggers.control import MAX_REASON, ControlTopicTrigger, MalformedRequest, parse_request


def test_a_request_for_this_pipeline_is_returned() -> None:
    raw = json.dumps({"pipeline": "churn", "reason": "new labels"}).encode()
    assert parse_request(raw, pipeline="churn", topic="ctl") == {"pipeline": "churn", "reason": "new labels",
                                                                 "topic": "ctl"}  # fmt: skip


def test_a_request_for_another_pipeline_is_passed_over() -> None:
    assert parse_request(b'{"pipeline": "fraud"}', pipeline="churn", topic="ctl") is None


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (None, "expected an object"),
        (b"[1, 2]", "expected an object"),
        (b'{"reason": "x"}', "expected an object"),
        (b'{"pipeline": 7}', "expected an object"),
        # RecursionError in json.loads stopped the trigger (N5); 32,000 levels raise it on every supported Python
        # (3.12 and 3.13 parse 1,024 and 5,000 levels) and stay below a request's 64 KiB
        (b"[" * 32_000 + b"]" * 32_000, "nested deeper"),
        (b'{"pipeline": "churn", "reason": ' + b"[" * 32_000 + b"]" * 32_000 + b"}", "nested deeper"),
        (b'{"pipeline": "churn", "reason": {"a": 1}}', "'reason' must be a string"),
        (b'{"pipeline": "churn", "reason": "' + b"x" * 70_000 + b'"}', "more than a request's limit"),
    ],
)
def test_malformed_messages_are_refused_with_the_reason(raw: bytes | None, message: str) -> None:
    with pytest.raises(MalformedRequest, match=message):
        parse_request(raw, pipeline="churn", topic="ctl")


def test_a_lone_surrogate_in_the_reason_is_escaped_so_the_event_can_be_stored() -> None:
    request = parse_request(b'{"pipeline": "churn", "reason": "bad \\ud800 byte"}', pipeline="churn", topic="ctl")
    assert request is not None and request["reason"] == "bad \\ud800 byte"
    request["reason"].encode("utf-8")  # stored as UTF-8 by Airflow: no UnicodeEncodeError


def test_the_reason_is_cut_to_its_limit() -> None:
    raw = json.dumps({"pipeline": "churn", "reason": "x" * 5000}).encode()
    request = parse_request(raw, pipeline="churn", topic="ctl")
    assert request is not None and len(request["reason"]) == MAX_REASON


@pytest.mark.shared_streams
def test_the_filter_yields_one_event_per_request_for_its_pipeline(caplog: pytest.LogCaptureFixture) -> None:
    trigger = ControlTopicTrigger(pipeline="churn", topic="ctl", kafka_config_id="kafka_control")
    stream = [b"garbage", b'{"pipeline": "fraud"}', b'{"pipeline": "churn", "reason": "a"}', b"{}",
              b'{"pipeline": "churn", "reason": "b"}']  # fmt: skip

    async def raw_events() -> AsyncIterator[Any]:
        for value in stream:
            yield value

    async def collect() -> list[Any]:
        return [event.payload async for event in trigger.filter_shared_stream(raw_events())]

    payloads = asyncio.run(collect())
    assert [p["reason"] for p in payloads] == ["a", "b"]
    assert "ignored control message on ctl: not JSON" in caplog.text


def test_requests_within_the_cool_down_are_passed_over(caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """N18: whoever can produce to the control topic kept retraining running back to back."""
    from mlops_ops.triggers import control

    clock = [1000.0]
    monkeypatch.setattr(control.time, "monotonic", lambda: clock[0])
    trigger = ControlTopicTrigger(pipeline="churn", topic="ctl", cooldown_s=3600)
    request = {"pipeline": "churn", "reason": "r", "topic": "ctl"}
    assert trigger._serve(request) is not None
    clock[0] += 3599
    assert trigger._serve(request) is None  # within the hour after the last one served
    assert "passed over: the control cool-down (3600 s) runs 1 s more" in caplog.text
    clock[0] += 2
    assert trigger._serve(request) is not None  # the cool-down counts from the last request served
    assert trigger._serve(None) is None  # another pipeline's request changes nothing
    assert ControlTopicTrigger(pipeline="churn", topic="ctl").serialize()[1]["cooldown_s"] == 0.0


def test_pipelines_on_one_topic_and_connection_share_one_consumer() -> None:
    a = ControlTopicTrigger(pipeline="a", topic="ctl", kafka_config_id="kafka_control")
    b = ControlTopicTrigger(pipeline="b", topic="ctl", kafka_config_id="kafka_control")
    c = ControlTopicTrigger(pipeline="a", topic="other", kafka_config_id="kafka_control")
    assert a.shared_stream_key() == b.shared_stream_key() != c.shared_stream_key()


@pytest.mark.shared_streams
def test_the_shared_consumer_is_the_kafka_providers_with_the_triggers_settings() -> None:
    from airflow.providers.apache.kafka.triggers.shared_stream import KafkaSharedStreamProducer

    trigger = ControlTopicTrigger(pipeline="a", topic="ctl", kafka_config_id="kafka_control", poll_interval=0.5)
    producer = ControlTopicTrigger.create_shared_stream_producer(trigger.serialize()[1])
    assert isinstance(producer, KafkaSharedStreamProducer)
    assert (producer.topics, producer.kafka_config_id, producer.poll_timeout) == (["ctl"], "kafka_control", 0.5)
