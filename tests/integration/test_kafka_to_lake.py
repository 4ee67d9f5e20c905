"""Kafka -> ``<pipeline>.raw`` (Iceberg) against the real embedded broker, catalog and S3."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_ops.exceptions import IngestError
from mlops_ops.hooks.kafka import LakeConsumerHook
from mlops_ops.lake import batches, kafka_ingest, parquet_files, transaction
from mlops_ops.lake.kafka_ingest import KafkaBatchSettings, stage_from_kafka
from mlops_ops.lake.records import json_decoder
from mlops_ops.lake.tables import PipelineTables
from tests.integration.lake_helpers import SCHEMA, checksum, committed_rows, event, new_tables, produce


def _stage(topic: str, tables: PipelineTables, consumer: Any = None, publish: bool = False,
           **overrides: Any) -> kafka_ingest.IngestResult:  # fmt: skip
    hook = LakeConsumerHook(topics=[topic], group_id="g-" + tables.pipeline)
    make_producer = None
    if overrides.get("dead_letter_topic"):
        from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook

        make_producer = KafkaProducerHook().get_producer
    settings = KafkaBatchSettings(topics=[topic], decoder=json_decoder, schema=overrides.pop("schema", SCHEMA),
                                  poll_timeout_s=10, rows_per_file=overrides.pop("rows_per_file", 400),
                                  **overrides)  # fmt: skip
    decide = (lambda staged: batches.publish(tables, tables.load("raw"), staged)) if publish else None
    return stage_from_kafka(consumer or (lambda: hook.get_conn), tables, settings, make_producer, decide)


def _run(topic: str, tables: PipelineTables, **overrides: Any) -> kafka_ingest.IngestResult:
    """Stage and publish (what the ingest task does without a quality gate)."""
    return _stage(topic, tables, publish=True, **overrides)


def test_exactly_the_produced_rows_land_once(stack, bootstrap: str, topic: str) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(2_000)])
    tables = new_tables()
    result = _run(topic, tables)
    assert result.rows == 2_000 and result.bad == 0
    rows = committed_rows(tables)
    assert len(rows) == 2_000
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(2_000)])
    assert sum(end - start for start, end in result.offsets.values()) == 2_000
    # where each row came from, exactly
    assert {r["_source"] for r in rows} == {"kafka"} and {r["_topic"] for r in rows} == {topic}
    assert len({(r["_partition"], r["_offset"]) for r in rows}) == 2_000
    # the positions are in the snapshot summary of raw's main, with the cluster id
    cluster, offsets = kafka_ingest.parse_cursor(transaction.cursor(transaction.head(tables.load("raw")), "kafka"))
    assert cluster and sum(offsets.values()) == 2_000
    # nothing new: the next run stages nothing
    assert _run(topic, tables).staged is None
    produce(bootstrap, topic, [event(i) for i in range(2_000, 2_500)])
    assert _run(topic, tables).rows == 500
    rows = committed_rows(tables)
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(2_500)])


def test_a_staged_batch_is_handed_on_not_read_again(stack, bootstrap, topic) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(300)])
    tables = new_tables()
    first = _stage(topic, tables)
    assert committed_rows(tables) == []  # staged on the audit branch: nobody reads it yet
    produce(bootstrap, topic, [event(i) for i in range(300, 350)])
    again = _stage(topic, tables)  # its gate died: the retry hands on the same batch, reads nothing new
    assert again.resumed and again.staged == first.staged and again.rows == 300
    batches.publish(tables, tables.load("raw"), again.staged)  # type: ignore[arg-type]
    assert _run(topic, tables).rows == 50
    assert len({r["id"] for r in committed_rows(tables)}) == len(committed_rows(tables)) == 350


def test_crash_mid_write_then_retry(stack, bootstrap, topic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(1_500)])
    tables = new_tables()
    real_add = parquet_files.RollingParquetWriter.add
    calls = {"n": 0}

    def die_mid_write(self, row, position, size=0):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 900:
            raise MemoryError("simulated crash mid-write")
        return real_add(self, row, position, size)

    monkeypatch.setattr(parquet_files.RollingParquetWriter, "add", die_mid_write)
    with pytest.raises(MemoryError):
        _run(topic, tables)
    monkeypatch.setattr(parquet_files.RollingParquetWriter, "add", real_add)
    assert committed_rows(tables) == []
    produce(bootstrap, topic, [event(i) for i in range(1_500, 1_600)])  # more arrived meanwhile
    assert _run(topic, tables).rows == 1_600
    assert len({r["id"] for r in committed_rows(tables)}) == len(committed_rows(tables)) == 1_600


def test_poison_messages_become_dead_letters_and_the_rest_is_published(stack, bootstrap, topic) -> None:  # type: ignore[no-untyped-def]
    poison = {
        b"[" * 1024: "nested too deeply",
        json.dumps({"id": "y", "n": 1, "x": 1.0, "ok": True, "at": "10000-01-01T00:00:00"}).encode(): "column 'at'",
        json.dumps({"id": "z", "n": "seven", "x": 1.0, "ok": True, "at": 0}).encode(): "column 'n' must be int",
        b"{" + b'"id": "big", "pad": "' + b"p" * (10 << 20) + b'"}': "larger than source.kafka.max_value_bytes",
        b'{"id": "\xc3\x28"}': "can't decode byte",
        b'{"id": "s\\ud800", "n": 1, "x": 1.0, "ok": true, "at": 0}': "lone UTF-16 surrogate",  # broke the file (N4)
    }
    produce(bootstrap, topic, [event(i) for i in range(500)] + list(poison))
    tables = new_tables()
    result = _run(topic, tables)
    assert (result.rows, result.bad) == (500, 6)
    assert len(committed_rows(tables)) == 500
    dead = {r["_offset"]: r for r in committed_rows(tables, "raw_dead_letters")}
    assert len(dead) == 6
    reasons = sorted(r["error"] for r in dead.values())
    for fragment in poison.values():
        assert sum(fragment in r for r in reasons) == 1, (fragment, reasons)
    big = next(r for r in dead.values() if "larger than" in r["error"])
    assert big["value_bytes"] > 10 << 20 and len(big["value"]) == 1 << 20  # the first MiB is kept
    # no schema: each column keeps its first type; a record of another type is that record's dead letter
    produce(bootstrap, topic, [json.dumps({"id": "m1", "n": 1}).encode(), json.dumps({"id": "m2", "n": "x"}).encode(),
                               json.dumps({"id": "m3", "geo.country": "fr"}).encode()])  # fmt: skip
    inferred = new_tables()
    result = _run(topic, inferred, schema=None)
    assert result.rows == 502 and result.bad == 7  # the 6 poison messages and {"n": "x"}
    # a field named with a "." is one top-level column (it failed Iceberg's add_column, halting every retry: N4)
    assert [r["geo.country"] for r in committed_rows(inferred) if r["id"] == "m3"] == ["fr"]


def test_too_many_bad_messages_fail_and_commit_nothing(stack, bootstrap, topic) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) if i % 2 else b"bad" for i in range(400)])
    tables = new_tables()
    with pytest.raises(IngestError, match=r"200 of 400 messages \(50.0%\).*above the allowed 10.0%"):
        _run(topic, tables, max_bad_share=0.1)
    raw = tables.load("raw")
    assert transaction.cursor(transaction.head(raw), "kafka") == "" and transaction.pending(raw, "kafka") is None
    # once the threshold is raised (an explicit decision), the same messages are ingested from the start
    result = _run(topic, tables, max_bad_share=0.6)
    assert (result.rows, result.bad) == (200, 200)
    assert len(committed_rows(tables, "raw_dead_letters")) == 200


def test_broker_unreachable_is_a_clear_error(stack, topic: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    down = '{"conn_type": "kafka", "extra": {"bootstrap.servers": "127.0.0.1:9"}}'
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DOWN", down)
    hook = LakeConsumerHook(topics=[topic], group_id="g", kafka_config_id="kafka_down")
    settings = KafkaBatchSettings(topics=[topic], decoder=json_decoder)
    with pytest.raises(IngestError, match="Kafka is unreachable"):
        stage_from_kafka(lambda: hook.get_conn, new_tables(), settings)


def test_offsets_of_another_cluster_are_not_trusted(stack, bootstrap, topic, caplog) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(50)])
    tables = new_tables()
    assert _run(topic, tables).rows == 50
    raw = tables.load("raw")
    _, offsets = kafka_ingest.parse_cursor(transaction.cursor(transaction.head(raw), "kafka"))
    # the broker lost its data (memory storage restarted): the lake's offsets are another cluster's
    moved = {k: v + 10_000 for k, v in offsets.items()}
    fake = transaction.json_value({"cluster": "an-older-cluster", "offsets": moved})
    transaction.commit_properties(raw, {"mlops.cursor.kafka": fake})
    result = _run(topic, tables)  # group offsets were committed at 50: nothing new, nothing skipped
    assert result.staged is None and "cluster id changed" in caplog.text
    produce(bootstrap, topic, [event(i) for i in range(50, 60)])
    assert _run(topic, tables).rows == 10


class _RetentionShifted:
    """A real consumer whose listed low watermarks are moved up: the messages below them "expired". Tansu has no
    retention deletion or DeleteRecords (checked: the request closes the connection), so the broker's own
    watermark cannot be moved here; everything else is the real broker."""

    def __init__(self, inner: Any, lows: dict[str, int]) -> None:
        self.inner, self.lows = inner, lows

    def get_watermark_offsets(self, tp: Any, *args: Any, **kwargs: Any) -> tuple[int, int]:
        low, high = self.inner.get_watermark_offsets(tp, *args, **kwargs)
        return max(low, self.lows.get(f"{tp.topic}/{tp.partition}", low)), high

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _ExpiresDuringRun(_RetentionShifted):
    """Retention removes ``gone`` offsets per partition once the run has started reading: the consumer (reset to
    the earliest offset) never delivers them, and the low watermark moves past them."""

    def __init__(self, inner: Any, gone: dict[str, range]) -> None:
        super().__init__(inner, {})
        self.gone = gone

    def consume(self, *args: Any, **kwargs: Any) -> list[Any]:
        self.lows = {k: r.stop for k, r in self.gone.items()}  # from now on the broker lists the new low end
        return [m for m in self.inner.consume(*args, **kwargs)
                if m.error() or m.offset() not in self.gone.get(f"{m.topic()}/{m.partition()}", ())]  # fmt: skip


def test_messages_expired_while_the_run_reads_are_a_counted_gap(stack, bootstrap, topic, caplog) -> None:  # type: ignore[no-untyped-def]
    """Retention deleting messages during a run used to be skipped silently (the consumer resets to the earliest
    offset); it is a retention gap like one found at the start: counted, recorded, or failing the run (N12). A jump
    the low watermark does not explain (compaction, transaction markers) is no gap."""
    produce(bootstrap, topic, [event(i) for i in range(90)])
    tables = new_tables()
    gone = {f"{topic}/{p}": range(5, 9) for p in range(3)}  # 4 messages of each partition expire mid-run

    def expiring() -> _ExpiresDuringRun:
        return _ExpiresDuringRun(LakeConsumerHook(topics=[topic], group_id="g-" + tables.pipeline).get_conn, gone)

    with pytest.raises(IngestError, match=r"retention gap during the run: 4 message\(s\) of .* from offset 5"):
        _stage(topic, tables, consumer=expiring, on_gap="fail")
    assert committed_rows(tables) == []
    result = _stage(topic, tables, consumer=expiring, publish=True)
    assert result.gaps == {key: 4 for key in gone} and result.rows == 78 and "during the run" in caplog.text
    head = transaction.head(tables.load("raw"))
    assert json.loads(transaction.summary_of(head)["mlops.gaps"]) == result.gaps
    produce(bootstrap, topic, [event(i) for i in range(90, 93)])
    assert _run(topic, tables).rows == 3 and len(committed_rows(tables)) == 81  # the next run starts after the gap


def test_a_retention_gap_is_counted_recorded_and_can_fail_the_run(stack, bootstrap, topic, caplog) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(90)])
    tables = new_tables()
    assert _run(topic, tables).rows == 90
    produce(bootstrap, topic, [event(i) for i in range(90, 180)])
    _, offsets = kafka_ingest.parse_cursor(transaction.cursor(transaction.head(tables.load("raw")), "kafka"))
    lows = {tp: next_offset + 5 for tp, next_offset in offsets.items()}  # 5 unread messages per partition expired

    def shifted() -> _RetentionShifted:
        return _RetentionShifted(LakeConsumerHook(topics=[topic], group_id="g-" + tables.pipeline).get_conn, lows)

    with pytest.raises(IngestError, match=r"retention gap: 15 message\(s\) expired.*on_gap is 'fail'"):
        _stage(topic, tables, consumer=shifted, on_gap="fail")
    result = _stage(topic, tables, consumer=shifted, publish=True)
    assert sum(result.gaps.values()) == 15 and result.rows == 75 and "retention gap" in caplog.text
    head = transaction.head(tables.load("raw"))
    assert json.loads(transaction.summary_of(head)["mlops.gaps"]) == result.gaps  # recorded with the batch
    assert len(committed_rows(tables)) == 165


def test_dead_letters_go_to_a_topic_too(stack, bootstrap: str, topic: str) -> None:  # type: ignore[no-untyped-def]
    from confluent_kafka import Consumer, TopicPartition

    produce(bootstrap, topic, [event(i) for i in range(200)] + [b"oops"] * 7)
    dlq = topic + ".dlq"
    result = _run(topic, new_tables(), dead_letter_topic=dlq)
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


def test_a_new_column_evolves_raw_and_an_incompatible_one_is_refused(stack, bootstrap, topic) -> None:  # type: ignore[no-untyped-def]
    from mlops_ops.exceptions import LakeSchemaError

    produce(bootstrap, topic, [event(i) for i in range(20)])
    tables = new_tables()
    assert _run(topic, tables).rows == 20
    produce(bootstrap, topic, [json.dumps({**json.loads(event(i)), "region": "eu"}).encode() for i in range(20, 30)])
    assert _run(topic, tables, schema={**SCHEMA, "region": "string"}).rows == 10
    rows = committed_rows(tables)
    assert [r["region"] for r in rows].count("eu") == 10 and [r["region"] for r in rows].count(None) == 20
    produce(bootstrap, topic, [event(i) for i in range(30, 31)])
    with pytest.raises(LakeSchemaError, match=r"column 'n' .* is long in the table"):
        _run(topic, tables, schema={**SCHEMA, "n": "string"})
