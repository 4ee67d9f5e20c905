"""Stage a bounded batch of Kafka messages into the pipeline's ``raw`` Iceberg table, exactly once.

One run:

1. A batch still staged on ``raw@audit_kafka`` (a gate that died, a run that failed after staging) is
   handed on as it is: nothing new is read until it is decided.
2. Start positions are the offsets in the summary of ``raw``'s current snapshot (with the Kafka cluster id;
   offsets of another cluster mean nothing), else the consumer group's committed offsets, else the earliest.
   A start below a partition's low watermark is a **retention gap**: counted, recorded in the snapshot
   summary, warned about, or the run fails when the spec says ``on_gap: fail``.
3. Each partition is read up to its end when the run started (bounded, repeatable), at most
   ``max_messages``. Rows stream into Parquet files in the table's data folder; memory does not grow with
   the batch. A message that cannot become a row (not decodable, too deep, wrong types, too large, bad
   UTF-8, a timestamp out of range, anything a user deserializer raises) goes to the dead-letter files.
4. More than ``max_bad_share`` dead letters: the run fails and nothing is committed.
5. One commit stages the batch (:func:`mlops_ops.lake.transaction.stage`), conditional on ``raw`` still being
   at the start positions. Publishing (after the gate, or at once without one) is
   :mod:`mlops_ops.lake.batches`. Kafka consumer-group offsets are committed after publishing, for lag
   monitoring only.

A retry after a crash before the staging commit reads again from the same positions; files of the dead
attempt are never committed, so never read.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mlops_ops.exceptions import IngestError
from mlops_ops.lake import transaction
from mlops_ops.lake.batches import DEAD_LETTER_FILES_KEY
from mlops_ops.lake.parquet_files import RollingParquetWriter, table_opener
from mlops_ops.lake.records import Decoder, InferredColumns, RecordError, make_conformer
from mlops_ops.lake.tables import (
    DEAD_LETTER_COLUMNS,
    SOURCE_COLUMNS,
    PipelineTables,
    arrow_schema,
    data_folder,
    iceberg_kind,
    raw_columns,
)

log = logging.getLogger(__name__)

SOURCE = "kafka"
CONSUMER_OVERRIDES = {"enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "earliest"}
TRANSIENT_ERROR_BUDGET_S = 30.0


@dataclass(frozen=True)
class KafkaBatchSettings:
    topics: list[str]
    decoder: Decoder
    schema: Mapping[str, str] | None = None
    max_messages: int = 1_000_000
    rows_per_file: int = 100_000
    rows_per_group: int = 10_000
    poll_timeout_s: float = 5.0
    max_bad_share: float = 0.1
    max_value_bytes: int = 1 << 20
    on_gap: Literal["warn", "fail"] = "warn"
    dead_letter_topic: str | None = None
    gated: bool = False  # a quality gate decides the batch (see transaction.claim)


@dataclass
class IngestResult:
    staged: transaction.StagedBatch | None
    rows: int
    bad: int
    offsets: dict[str, list[int]] = field(default_factory=dict)
    """``"topic/partition" -> [first, next]`` for the messages this batch covers."""
    gaps: dict[str, int] = field(default_factory=dict)
    resumed: bool = False


def _tp_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


def parse_cursor(text: str) -> tuple[str | None, dict[str, int]]:
    """``(cluster id, {"topic/partition": next offset})`` of a committed Kafka cursor."""
    if not text:
        return None, {}
    import json

    value = json.loads(text)
    return value.get("cluster"), {str(k): int(v) for k, v in value.get("offsets", {}).items()}


def result_of(staged: transaction.StagedBatch, *, resumed: bool) -> IngestResult:
    import json

    s = staged.summary
    return IngestResult(
        staged,
        int(s.get("mlops.rows", 0)),
        int(s.get("mlops.bad", 0)),
        json.loads(s.get("mlops.kafka.range", "{}")),
        json.loads(s.get("mlops.gaps", "{}")),
        resumed=resumed,
    )


class KafkaBatchIngest:
    """One run. ``consumer`` is a confluent-kafka ``Consumer`` with auto-commit off and
    ``enable.partition.eof`` on (see :data:`CONSUMER_OVERRIDES`)."""

    def __init__(
        self,
        consumer: Any,
        tables: PipelineTables,
        settings: KafkaBatchSettings,
        make_producer: Callable[[], Any] | None = None,
    ) -> None:
        self.consumer = consumer
        self.make_producer = make_producer
        self.tables = tables
        self.settings = settings
        self.cluster_id: str | None = None

    # ---------------------------------------------------------------- planning
    def _plan(self, lake_cursor: str) -> tuple[dict[tuple[str, int], tuple[int, int]], dict[str, int]]:
        """``(topic, partition) -> (start, listed end)`` for every partition, and retention gaps."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            return self._plan_positions(TopicPartition, lake_cursor)
        except KafkaException as err:
            raise IngestError(
                f"Kafka is unreachable or refused the request ({err.args[0] if err.args else err}); "
                "nothing was read or committed"
            ) from err

    def _plan_positions(
        self, TopicPartition: Any, lake_cursor: str
    ) -> tuple[dict[tuple[str, int], tuple[int, int]], dict[str, int]]:
        lake_cluster, lake_offsets = parse_cursor(lake_cursor)
        cluster = self.consumer.list_topics(timeout=10).cluster_id
        self.cluster_id = cluster
        if lake_offsets and lake_cluster not in (None, cluster):
            # Offsets of another cluster (or a broker that lost its data) mean nothing here.
            log.warning(
                "Kafka cluster id changed from %s to %s: the lake's offsets belong to the old cluster; "
                "reading from the consumer group's offsets or the earliest offset",
                lake_cluster,
                cluster,
            )
            lake_offsets = {}
        tps = []
        for topic in self.settings.topics:
            meta = self.consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                raise IngestError(f"Kafka topic '{topic}' is not available: {getattr(meta, 'error', 'missing')}")
            tps += [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        committed = {(tp.topic, tp.partition): tp.offset for tp in self.consumer.committed(tps, timeout=10)}
        plan, gaps = {}, {}
        for tp in tps:
            low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
            key = (tp.topic, tp.partition)
            start = lake_offsets.get(_tp_key(*key))
            if start is None:
                start = committed[key] if committed[key] >= 0 else low
            elif start > high:
                log.warning(
                    "the lake's offset %d of %s/%d is past the partition's end %d: was the topic recreated? Nothing "
                    "is read from it until raw's Kafka cursor is reset",
                    start,
                    *key,
                    high,
                )
            if low > start:
                gaps[_tp_key(*key)] = low - start
            plan[key] = (max(start, low), high)
        return plan, gaps

    # ---------------------------------------------------------------- run
    def run(self, publish: Callable[[transaction.StagedBatch], Any] | None = None) -> IngestResult:
        """Stage one batch; with ``publish``, also decide it at once and mirror the position in Kafka."""
        result = self._stage()
        if publish is not None and result.staged is not None:
            publish(result.staged)
            _, offsets = parse_cursor(result.staged.end_cursor)
            commit_group_offsets(self.consumer, offsets)
        return result

    def _stage(self) -> IngestResult:
        from confluent_kafka import KafkaError, TopicPartition

        columns = raw_columns(self.settings.schema)
        raw = self.tables.raw(columns)
        staged, start_cursor = transaction.begin(raw, SOURCE, gated=self.settings.gated)
        if staged is not None:
            return result_of(staged, resumed=True)
        plan, gaps = self._plan(start_cursor)
        start_cluster, start_offsets = parse_cursor(start_cursor)
        if start_offsets and start_cluster == self.cluster_id:
            # the consumer group mirrors what raw holds (batches the gate published since the last run included)
            commit_group_offsets(self.consumer, start_offsets)
        if gaps:
            lost = sum(gaps.values())
            text = (
                f"retention gap: {lost} message(s) expired from Kafka before the lake read them "
                f"({', '.join(f'{k}: {v}' for k, v in sorted(gaps.items()))})"
            )
            if self.settings.on_gap == "fail":
                raise IngestError(text + "; source.kafka.on_gap is 'fail': nothing was read or committed")
            log.error("%s; recorded in the snapshot summary (source.kafka.on_gap: warn)", text)
        batch_id = _batch_id(plan, self.cluster_id)
        opener = table_opener(raw.io)
        dead_table = self.tables.dead_letters()
        inferred = None if columns is not None else InferredColumns(_known_kinds(raw), set(SOURCE_COLUMNS))
        schema: Any = arrow_schema(columns) if columns is not None else _inferred_schema(inferred)
        conform = make_conformer(self.settings.schema) if self.settings.schema is not None else inferred
        assert conform is not None
        dl_schema = arrow_schema(DEAD_LETTER_COLUMNS)
        writers: dict[tuple[str, int], RollingParquetWriter] = {}
        dead: dict[tuple[str, int], RollingParquetWriter] = {}
        ends = {key: listed for key, (_, listed) in plan.items()}
        fetched_once: set[tuple[str, int]] = set()
        at_eof: set[tuple[str, int]] = set()
        nxt = {key: start for key, (start, _) in plan.items()}
        self.consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in plan.items()])
        total = bad = 0
        decode, max_bytes = self.settings.decoder, self.settings.max_value_bytes
        now = datetime.now(UTC)
        idle_since = time.monotonic()
        error_since: float | None = None
        done = lambda: all(k in at_eof or (k in fetched_once and nxt[k] >= ends[k]) for k in plan)  # noqa: E731
        while total < self.settings.max_messages and not done():
            messages = self.consumer.consume(num_messages=min(10_000, self.settings.max_messages - total), timeout=0.5)
            if not messages:
                if time.monotonic() - idle_since > self.settings.poll_timeout_s:
                    break
                continue
            idle_since = time.monotonic()
            for msg in messages:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_eof.add((msg.topic(), msg.partition()))
                        continue
                    error_since = _tolerate(err, msg, error_since)
                    continue
                error_since = None
                key = (msg.topic(), msg.partition())
                at_eof.discard(key)
                if key not in fetched_once:
                    # Some brokers (Tansu) list the last batch's base offset as the end; the fetch
                    # response's high watermark is exact, so take the larger of the two, once.
                    _, fetched_high = self.consumer.get_watermark_offsets(TopicPartition(*key), cached=True)
                    ends[key] = max(ends[key], fetched_high)
                    fetched_once.add(key)
                offset = msg.offset()
                if offset < nxt[key] or offset >= ends[key] or total >= self.settings.max_messages:
                    continue
                if offset > nxt[key]:  # a jump: compaction or transaction markers, or retention expired them (N12)
                    lost = self._expired(key, nxt[key], offset)
                    if lost:
                        gaps[_tp_key(*key)] = gaps.get(_tp_key(*key), 0) + lost
                        text = (f"retention gap during the run: {lost} message(s) of {key[0]}/{key[1]} from offset "
                                f"{nxt[key]} expired from Kafka before the lake read them")  # fmt: skip
                        if self.settings.on_gap == "fail":
                            for w in [*writers.values(), *dead.values()]:
                                w.abandon()
                            raise IngestError(text + "; source.kafka.on_gap is 'fail': nothing was committed")
                        log.error("%s; recorded in the snapshot summary (source.kafka.on_gap: warn)", text)
                nxt[key] = offset + 1
                total += 1
                value = msg.value() or b""
                try:
                    if len(value) > max_bytes:
                        raise RecordError(
                            f"value of {len(value):,} bytes is larger than source.kafka.max_value_bytes ({max_bytes:,})"
                        )
                    row = conform(decode(value))
                    ts_type, ts = msg.timestamp()
                    row.update(
                        _source=SOURCE,
                        _topic=key[0],
                        _partition=key[1],
                        _offset=offset,
                        _batch=batch_id,
                        _timestamp=datetime.fromtimestamp(ts / 1000, tz=UTC) if ts_type else None,
                    )
                except Exception as exc:  # noqa: BLE001 - whatever one message does is that message's problem
                    bad += 1
                    if bad <= 5:
                        log.warning("dead letter %s/%s@%s: %s", key[0], key[1], offset, _reason(exc))
                    if key not in dead:
                        dead[key] = self._writer(opener, data_folder(dead_table, batch_id, *map(str, key)), dl_schema)
                    dead[key].add(
                        {
                            "_source": SOURCE,
                            "_topic": key[0],
                            "_partition": key[1],
                            "_offset": offset,
                            "key": msg.key(),
                            "value": value[:max_bytes],
                            "value_bytes": len(value),
                            "error": _reason(exc),
                            "_batch": batch_id,
                            "_at": now,
                        },
                        offset,
                        min(len(value), max_bytes),
                    )
                    continue
                writer = writers.get(key)
                if writer is None:
                    writer = writers[key] = self._writer(opener, data_folder(raw, batch_id, *map(str, key)), schema)
                writer.add(row, offset, len(value))
        self.consumer.pause(self.consumer.assignment())

        covered = {k: (plan[k][0], nxt[k]) for k in plan if nxt[k] > plan[k][0]}
        if total == 0 and not gaps:
            return IngestResult(None, 0, 0)
        if total and bad / total > self.settings.max_bad_share:
            for w in [*writers.values(), *dead.values()]:
                w.abandon()
            raise IngestError(
                f"{bad} of {total} messages ({bad / total:.1%}) could not become rows, above the allowed "
                f"{self.settings.max_bad_share:.1%} (source.kafka.dead_letter.max_bad_share); nothing was committed. "
                "First reasons are in the task log."
            )
        files = [f.path for w in writers.values() for f in w.close()]
        dead_files = [f.path for w in dead.values() for f in w.close()]
        if dead_files and self.settings.dead_letter_topic:
            self._send_dead_letters(dead_table, dead_files)
        if inferred is not None:
            from mlops_ops.lake.tables import evolve

            raw = evolve(raw, _inferred_schema(inferred)())
        offsets = {_tp_key(*k): list(v) for k, v in sorted(covered.items())}
        # every partition's next position (a gap's start moves to the low watermark even when nothing was read)
        next_offsets = {**start_offsets, **{_tp_key(*k): nxt[k] for k in plan}}
        end_cursor = transaction.json_value({"cluster": self.cluster_id, "offsets": next_offsets})
        props = {
            "mlops.rows": str(total - bad),
            "mlops.bad": str(bad),
            "mlops.kafka.range": transaction.json_value(offsets),
            "mlops.kafka.cluster-id": str(self.cluster_id),
            DEAD_LETTER_FILES_KEY: transaction.json_value(dead_files),
            **({"mlops.gaps": transaction.json_value(gaps)} if gaps else {}),
        }
        staged = transaction.stage(
            raw,
            source=SOURCE,
            batch_id=batch_id,
            start_cursor=start_cursor,
            end_cursor=end_cursor,
            files=files,
            properties=props,
        )
        return IngestResult(staged, total - bad, bad, offsets, gaps)

    # ---------------------------------------------------------------- helpers
    def _expired(self, key: tuple[str, int], expected: int, got: int) -> int:
        """How many of the offsets ``expected..got-1`` retention removed: those below the partition's low watermark
        now (the consumer, reset to the earliest offset, skipped them). Offsets missing above it are compaction's
        or transaction markers', never messages lost."""
        from confluent_kafka import TopicPartition

        low, _ = self.consumer.get_watermark_offsets(TopicPartition(*key), timeout=10, cached=False)
        return max(0, min(got, low) - expected)

    def _writer(self, opener: Any, folder: str, schema: Any) -> RollingParquetWriter:
        return RollingParquetWriter(
            folder,
            opener,
            schema=schema,
            rows_per_group=min(self.settings.rows_per_group, self.settings.rows_per_file),
            rows_per_file=self.settings.rows_per_file,
        )

    def _send_dead_letters(self, dead_table: Any, paths: list[str]) -> None:
        """Copy dead letters to the dead-letter topic, keyed by their source position.

        Sent before the staging commit, so a retry after a crash may send some again (at least once); the key
        ``topic/partition/offset`` lets consumers drop repeats. The lake's dead-letter table has them once.
        """
        import pyarrow.parquet as pq

        if self.make_producer is None:
            raise IngestError("a dead-letter topic is configured but no Kafka producer was given")
        producer = self.make_producer()
        topic = self.settings.dead_letter_topic
        failures: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        for path in paths:
            with dead_table.io.new_input(path).open() as fh:
                rows = pq.read_table(fh).to_pylist()
            for row in rows:
                producer.produce(
                    topic,
                    key=f"{row['_topic']}/{row['_partition']}/{row['_offset']}".encode(),
                    value=row["value"],
                    headers={"mlops.error": row["error"].encode(), "mlops.source_topic": row["_topic"].encode()},
                    on_delivery=delivered,
                )
                producer.poll(0)
        remaining = producer.flush(30)
        if remaining or failures:
            raise IngestError(
                f"could not deliver dead letters to topic '{topic}' ({remaining} pending, errors: {failures[:3]}); "
                "nothing was committed"
            )


def commit_group_offsets(consumer: Any, offsets: Mapping[str, int]) -> None:
    """Kafka's own record of what the lake holds (lag monitoring only; the lake's cursor is the truth)."""
    from confluent_kafka import KafkaException, TopicPartition

    if not offsets:
        return
    try:
        consumer.commit(offsets=[TopicPartition(*_split_tp(k), end) for k, end in offsets.items()], asynchronous=False)
    except KafkaException as err:
        log.warning("Published to the lake but could not commit Kafka offsets (next run is still exact): %s", err)


def _split_tp(key: str) -> tuple[str, int]:
    topic, _, partition = key.rpartition("/")
    return topic, int(partition)


def _tolerate(err: Any, msg: Any, since: float | None) -> float:
    """Transient consumer errors are waited out for a while; fatal ones, or too long, fail the run."""
    now = time.monotonic()
    since = since if since is not None else now
    if err.fatal() or (not err.retriable() and err.code() > 0) or now - since > TRANSIENT_ERROR_BUDGET_S:
        raise IngestError(f"Kafka error while reading {msg.topic()}/{msg.partition()}: {err}; nothing was committed")
    log.warning("transient Kafka error (retrying): %s", err)
    return since


def _reason(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, RecordError) else f"{type(exc).__name__}: {exc}"
    return text[:500]


def _known_kinds(raw: Any) -> dict[str, str]:
    kinds = {}
    for f in raw.schema().fields:
        kind = iceberg_kind(f.field_type)
        if kind is not None and f.name not in SOURCE_COLUMNS:
            kinds[f.name] = kind
    return kinds


def _inferred_schema(inferred: Any) -> Callable[[], Any]:
    return lambda: arrow_schema({**inferred.kinds, **SOURCE_COLUMNS})


def _batch_id(plan: Mapping[tuple[str, int], tuple[int, int]], cluster_id: str | None) -> str:
    """Same start, same id. The cluster id is part of it: a broker that lost its data starts at 0 again."""
    text = f"{cluster_id or ''}:" + ",".join(f"{t}/{p}@{start}" for (t, p), (start, _) in sorted(plan.items()))
    return "kafka-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def stage_from_kafka(
    make_consumer: Callable[[], Any],
    tables: PipelineTables,
    settings: KafkaBatchSettings,
    make_producer: Callable[[], Any] | None = None,
    publish: Callable[[transaction.StagedBatch], Any] | None = None,
) -> IngestResult:
    """Run one batch with a fresh consumer, always closing it (see :meth:`KafkaBatchIngest.run`)."""
    consumer = make_consumer()
    try:
        return KafkaBatchIngest(consumer, tables, settings, make_producer).run(publish)
    finally:
        consumer.close()
