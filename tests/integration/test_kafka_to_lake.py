"""Kafka -> lake against the real embedded broker and S3."""

from __future__ import annotations

import uuid

import pytest

from mlops_ops.exceptions import IngestError
from mlops_ops.hooks.kafka import LakeConsumerHook
from mlops_ops.lake import kafka_ingest, parquet_files
from mlops_ops.lake.kafka_ingest import KafkaBatchSettings, consume_into_lake
from mlops_ops.lake.records import json_decoder
from mlops_ops.lake.store import Dataset
from tests.integration.lake_helpers import SCHEMA, checksum, committed_rows, event, produce


def _dataset(lake: str = "s3://mlops-lake/tests") -> Dataset:
    return Dataset.at(lake, f"p{uuid.uuid4().hex[:8]}", "raw", conn_id="aws_default")


def _run(topic: str, dataset: Dataset, **overrides) -> kafka_ingest.IngestResult:  # type: ignore[no-untyped-def]
    group = "g-" + dataset.root.parent.name
    hook = LakeConsumerHook(topics=[topic], group_id=group)
    make_producer = None
    if overrides.get("dead_letter_topic"):
        from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook

        make_producer = KafkaProducerHook().get_producer
    settings = KafkaBatchSettings(topics=[topic], decoder=json_decoder, schema=SCHEMA, poll_timeout_s=10,
                                  rows_per_file=overrides.pop("rows_per_file", 400), **overrides)  # fmt: skip
    return consume_into_lake(lambda: hook.get_conn, dataset, settings, make_producer)


def test_exactly_the_produced_rows_land_once(stack, bootstrap: str, topic: str) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(2_000)])
    dataset = _dataset()
    result = _run(topic, dataset)
    assert result.rows == 2_000 and result.bad == 0
    rows = committed_rows(dataset)
    assert len(rows) == 2_000
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(2_000)])
    assert sum(end - start for start, end in result.offsets.values()) == 2_000
    # nothing new: the next run reads nothing and publishes nothing
    assert _run(topic, dataset).manifest_uri is None
    # new messages: only those are added
    produce(bootstrap, topic, [event(i) for i in range(2_000, 2_500)])
    assert _run(topic, dataset).rows == 500
    rows = committed_rows(dataset)
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(2_500)])


def test_local_lake_path_works_too(stack, bootstrap: str, topic: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(300)])
    dataset = _dataset(str(tmp_path / "lake"))
    assert _run(topic, dataset).rows == 300
    assert len(committed_rows(dataset)) == 300
    assert not (tmp_path / "lake" / dataset.root.parent.name / "raw" / "_staging").exists() or not any(
        (tmp_path / "lake" / dataset.root.parent.name / "raw" / "_staging").iterdir()
    )


def test_crash_after_publish_before_commit_then_retry(stack, bootstrap, topic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(1_000)])
    dataset = _dataset()
    real_write = Dataset.write_json

    def die_on_state(self, obj, *parts):  # type: ignore[no-untyped-def]
        if parts[0] == "_state":
            raise RuntimeError("killed before the commit point")
        return real_write(self, obj, *parts)

    monkeypatch.setattr(Dataset, "write_json", die_on_state)
    with pytest.raises(RuntimeError, match="killed"):
        _run(topic, dataset)
    assert committed_rows(dataset) == []  # the manifest was written but is not committed: invisible
    monkeypatch.setattr(Dataset, "write_json", real_write)
    produce(bootstrap, topic, [event(i) for i in range(1_000, 1_100)])  # more arrived meanwhile
    assert _run(topic, dataset).rows == 1_100
    rows = committed_rows(dataset)
    assert len(rows) == 1_100
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(1_100)])


def test_crash_mid_write_then_retry(stack, bootstrap, topic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(1_500)])
    dataset = _dataset()
    real_add = parquet_files.RollingParquetWriter.add
    calls = {"n": 0}

    def die_mid_write(self, row, position):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 900:
            raise MemoryError("simulated crash mid-write")
        return real_add(self, row, position)

    monkeypatch.setattr(parquet_files.RollingParquetWriter, "add", die_mid_write)
    with pytest.raises(MemoryError):
        _run(topic, dataset)
    monkeypatch.setattr(parquet_files.RollingParquetWriter, "add", real_add)
    assert committed_rows(dataset) == []
    assert _run(topic, dataset).rows == 1_500
    assert len({r["id"] for r in committed_rows(dataset)}) == len(committed_rows(dataset)) == 1_500


def test_malformed_messages_are_quarantined(stack, bootstrap: str, topic: str) -> None:  # type: ignore[no-untyped-def]
    values = [event(i) for i in range(950)] + [b"\x00garbage"] * 30 + [b'{"id": "x"}'] * 20
    produce(bootstrap, topic, values)
    dataset = _dataset()
    result = _run(topic, dataset)
    assert (result.rows, result.bad) == (950, 50)
    manifest = dataset.read_json("manifests", result.manifest_uri.rsplit("/", 1)[-1])  # type: ignore[union-attr]
    assert sum(f["rows"] for f in manifest["quarantine"]) == 50
    import pyarrow.parquet as pq

    from mlops_ops.lake.store import lake_path

    reasons = []
    for entry in manifest["quarantine"]:
        with lake_path(entry["uri"], conn_id="aws_default").open("rb") as fh:
            reasons += pq.read_table(fh).column("error").to_pylist()
    assert reasons.count("missing column 'n' (int)") == 20
    assert sum("not valid JSON" in r for r in reasons) == 30


def test_too_many_bad_messages_fail_and_commit_nothing(stack, bootstrap, topic) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) if i % 2 else b"bad" for i in range(400)])
    dataset = _dataset()
    with pytest.raises(IngestError, match=r"200 of 400 messages \(50.0%\).*above the allowed 10.0%"):
        _run(topic, dataset, max_bad_share=0.1)
    assert dataset.read_json("_state", kafka_ingest.STATE_FILE) is None
    # once the threshold is raised (an explicit decision), the same messages are ingested from the start
    result = _run(topic, dataset, max_bad_share=0.6)
    assert (result.rows, result.bad) == (200, 200)


def test_broker_unreachable_is_a_clear_error(stack, topic: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    down = '{"conn_type": "kafka", "extra": {"bootstrap.servers": "127.0.0.1:9"}}'
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DOWN", down)
    hook = LakeConsumerHook(topics=[topic], group_id="g", kafka_config_id="kafka_down")
    settings = KafkaBatchSettings(topics=[topic], decoder=json_decoder)
    with pytest.raises(IngestError, match="Kafka is unreachable"):
        consume_into_lake(lambda: hook.get_conn, _dataset(), settings)


def test_offsets_of_another_cluster_are_not_trusted(stack, bootstrap, topic, caplog) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(50)])
    dataset = _dataset()
    assert _run(topic, dataset).rows == 50
    state = dataset.read_json("_state", kafka_ingest.STATE_FILE)
    assert state["cluster_id"]
    # the broker lost its data (memory storage restarted): lake offsets are far past the new end
    state["cluster_id"] = "an-older-cluster"
    state["offsets"] = {k: v + 10_000 for k, v in state["offsets"].items()}
    dataset.write_json(state, "_state", kafka_ingest.STATE_FILE)
    result = _run(topic, dataset)  # group offsets were committed at 50: nothing new, nothing skipped
    assert result.manifest_uri is None
    assert "cluster id changed" in caplog.text
    produce(bootstrap, topic, [event(i) for i in range(50, 60)])
    assert _run(topic, dataset).rows == 10


def test_dead_letters_go_to_a_topic_too(stack, bootstrap: str, topic: str) -> None:  # type: ignore[no-untyped-def]
    from confluent_kafka import Consumer, TopicPartition

    produce(bootstrap, topic, [event(i) for i in range(200)] + [b"oops"] * 7)
    dlq = topic + ".dlq"
    result = _run(topic, _dataset(), dead_letter_topic=dlq)
    assert (result.rows, result.bad) == (200, 7)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "dlq-reader", "enable.partition.eof": True})
    parts = consumer.list_topics(dlq, timeout=10).topics[dlq].partitions
    consumer.assign([TopicPartition(dlq, p, 0) for p in parts])
    got = []
    for _ in range(20):
        got += [m for m in consumer.consume(100, timeout=1) if m.error() is None]
        if len(got) >= 7:
            break
    consumer.close()
    assert len(got) == 7
    assert all(m.value() == b"oops" for m in got)
    assert {dict(m.headers())["mlops.source_topic"] for m in got} == {topic.encode()}
    assert all(b"not valid JSON" in dict(m.headers())["mlops.error"] for m in got)
    assert len({m.key() for m in got}) == 7 and all(m.key().startswith(topic.encode() + b"/") for m in got)


def test_lake_offsets_past_the_end_are_reported(stack, bootstrap, topic, caplog) -> None:  # type: ignore[no-untyped-def]
    """Same cluster, offsets beyond the partition's end (a recreated topic): nothing is read, and the log says why."""
    produce(bootstrap, topic, [event(i) for i in range(30)])
    dataset = _dataset()
    assert _run(topic, dataset).rows == 30
    state = dataset.read_json("_state", kafka_ingest.STATE_FILE)
    state["offsets"] = {k: v + 10_000 for k, v in state["offsets"].items()}
    dataset.write_json(state, "_state", kafka_ingest.STATE_FILE)
    produce(bootstrap, topic, [event(i) for i in range(30, 40)])
    assert _run(topic, dataset).manifest_uri is None
    assert "past the partition's end" in caplog.text and "was the topic recreated?" in caplog.text
