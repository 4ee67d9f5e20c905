"""Ingest a bounded batch of Kafka messages into a lake dataset, exactly once.

Protocol of one run:

1. Start positions come from the lake's own committed state (``_state/kafka.json``),
   falling back to the consumer group's committed offsets, then the earliest offset.
   The lake, not Kafka, is the source of truth: Kafka offsets are committed last and
   only for lag monitoring, so a crash between publish and offset commit is harmless.
2. Each partition is read up to the end offset seen when the run started; the batch is
   finite and a re-run covers the same messages.
3. Rows stream into bounded Parquet files under ``_staging/<run key>/``; messages that do
   not decode go to quarantine files with their bytes, position and reason.
4. If the bad share is above the threshold the run fails here: nothing was published.
5. Files move to names made of topic, partition and offset range; a manifest whose name
   derives from the start positions records files, ranges, row counts and schema; then
   ``_state/kafka.json`` is replaced (the commit point); then Kafka offsets are committed.

A retry after a crash at any step starts from the same positions, so it rewrites the
same manifest name, and only manifests listed in ``_state`` are visible to readers.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops_ops.exceptions import IngestError
from mlops_ops.lake.parquet_files import ClosedFile, RollingParquetWriter, arrow_schema
from mlops_ops.lake.records import Decoder, RecordError, make_conformer
from mlops_ops.lake.store import Dataset

log = logging.getLogger(__name__)

STATE_FILE = "kafka.json"
CONSUMER_OVERRIDES = {"enable.auto.commit": False, "enable.partition.eof": True, "auto.offset.reset": "earliest"}
META_COLUMNS = {"_topic": "string", "_partition": "int32", "_offset": "int", "_timestamp": "timestamp"}
QUARANTINE_COLUMNS = {"_topic": "string", "_partition": "int32", "_offset": "int", "key": "binary",
                      "value": "binary", "error": "string"}  # fmt: skip


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
    dead_letter_topic: str | None = None


@dataclass
class IngestResult:
    manifest_uri: str | None
    rows: int
    bad: int
    offsets: dict[str, list[int]] = field(default_factory=dict)
    """``"topic/partition" -> [first, next]`` for the messages this run covered."""


def _tp_key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class KafkaBatchIngest:
    """One run. ``consumer`` is a confluent-kafka ``Consumer`` with auto-commit off and
    ``enable.partition.eof`` on (see :data:`CONSUMER_OVERRIDES`)."""

    def __init__(
        self,
        consumer: Any,
        dataset: Dataset,
        settings: KafkaBatchSettings,
        make_producer: Callable[[], Any] | None = None,
    ) -> None:
        self.consumer = consumer
        self.make_producer = make_producer
        self.dataset = dataset
        self.settings = settings
        self.cluster_id: str | None = None

    # ---------------------------------------------------------------- planning
    def _start_positions(self) -> dict[tuple[str, int], tuple[int, int]]:
        """``(topic, partition) -> (start, listed end)`` for every partition of the topics."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            return self._plan(TopicPartition)
        except KafkaException as err:
            raise IngestError(
                f"Kafka is unreachable or refused the request ({err.args[0] if err.args else err}); "
                "nothing was read or committed"
            ) from err

    def _plan(self, TopicPartition: Any) -> dict[tuple[str, int], tuple[int, int]]:
        state = self.dataset.read_json("_state", STATE_FILE) or {}
        lake_offsets: dict[str, int] = state.get("offsets", {})
        cluster = self.consumer.list_topics(timeout=10).cluster_id
        self.cluster_id = cluster
        if lake_offsets and state.get("cluster_id") not in (None, cluster):
            # Offsets of another cluster (or a broker that lost its data) mean nothing here.
            log.warning(
                "Kafka cluster id changed from %s to %s: the lake's offsets belong to the old cluster; "
                "reading from the consumer group's offsets or the earliest offset",
                state.get("cluster_id"),
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
        plan = {}
        for tp in tps:
            low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
            key = (tp.topic, tp.partition)
            start = lake_offsets.get(_tp_key(*key))
            if start is None:
                start = committed[key] if committed[key] >= 0 else low
            elif start > high:
                log.warning(
                    "the lake's offset %d of %s/%d is past the partition's end %d: was the topic recreated? Nothing "
                    "is read from it until the offsets in %s are reset", start, *key, high,
                    self.dataset.uri("_state", STATE_FILE),
                )  # fmt: skip
            plan[key] = (max(start, low), high)
        return plan

    # ---------------------------------------------------------------- run
    def run(self, run_key_prefix: str = "") -> IngestResult:
        from confluent_kafka import KafkaError, TopicPartition

        plan = self._start_positions()
        run_key = run_key_prefix + _run_key(plan, self.cluster_id)
        staging = self.dataset.path("_staging", run_key)
        self.dataset.remove_tree("_staging", run_key)  # leftovers of a killed attempt of this same run
        schema = arrow_schema(dict(self.settings.schema) if self.settings.schema else None, META_COLUMNS)
        q_schema = arrow_schema(QUARANTINE_COLUMNS, {})
        writers: dict[tuple[str, int], RollingParquetWriter] = {}
        quarantine: dict[tuple[str, int], RollingParquetWriter] = {}
        ends = {key: listed for key, (_, listed) in plan.items()}
        fetched_once: set[tuple[str, int]] = set()
        at_eof: set[tuple[str, int]] = set()
        nxt = {key: start for key, (start, _) in plan.items()}
        self.consumer.assign([TopicPartition(t, p, start) for (t, p), (start, _) in plan.items()])
        total = bad = 0
        conform = make_conformer(self.settings.schema)
        decode = self.settings.decoder
        idle_since = time.monotonic()
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
                    raise IngestError(f"Kafka error while reading {msg.topic()}/{msg.partition()}: {err}")
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
                nxt[key] = offset + 1
                total += 1
                try:
                    row = conform(decode(msg.value() or b""))
                except (RecordError, ValueError, TypeError) as exc:
                    bad += 1
                    if bad <= 5:
                        log.warning("malformed message %s/%s@%s: %s", key[0], key[1], offset, exc)
                    if key not in quarantine:
                        quarantine[key] = self._writer(staging, "quarantine", key, q_schema)
                    quarantine[key].add({"_topic": key[0], "_partition": key[1], "_offset": offset, "key": msg.key(),
                            "value": msg.value(), "error": str(exc)[:500]}, offset)  # fmt: skip
                    continue
                ts_type, ts = msg.timestamp()
                row.update(_topic=key[0], _partition=key[1], _offset=offset,
                           _timestamp=datetime.fromtimestamp(ts / 1000, tz=UTC) if ts_type else None)  # fmt: skip
                writer = writers.get(key)
                if writer is None:
                    writer = writers[key] = self._writer(staging, "data", key, schema)
                writer.add(row, offset)
        self.consumer.pause(self.consumer.assignment())

        covered = {k: (plan[k][0], nxt[k]) for k in plan if nxt[k] > plan[k][0]}
        if total == 0:
            return IngestResult(None, 0, 0)
        if bad / total > self.settings.max_bad_share:
            raise IngestError(
                f"{bad} of {total} messages ({bad / total:.1%}) could not be decoded, above the allowed "
                f"{self.settings.max_bad_share:.1%} (source.kafka.dead_letter.max_bad_share); nothing was published "
                f"and no offset was committed. First errors are in the task log."
            )
        for qw in quarantine.values():
            qw.close()
        if bad and self.settings.dead_letter_topic:
            self._send_dead_letters(quarantine)
        files = self._publish(writers, "data", run_key) + self._publish(quarantine, "quarantine", run_key)
        offsets = {_tp_key(*k): list(v) for k, v in sorted(covered.items())}
        manifest: dict[str, Any] = {
            "kind": "kafka",
            "run_key": run_key,
            "created_at": datetime.now(UTC).isoformat(),
            "rows": total - bad,
            "bad": bad,
            "offsets": offsets,
            "files": [f for f in files if f["role"] == "data"],
            "quarantine": [f for f in files if f["role"] == "quarantine"],
        }
        manifest_uri = self.dataset.uri("manifests", f"{run_key}.json")
        self.dataset.write_json(manifest, "manifests", f"{run_key}.json")
        state = self.dataset.read_json("_state", STATE_FILE) or {"offsets": {}, "manifests": []}
        if state.get("cluster_id") not in (None, self.cluster_id):
            state["offsets"] = {}
        state["cluster_id"] = self.cluster_id
        state["offsets"].update({_tp_key(*k): v[1] for k, v in covered.items()})
        if manifest_uri not in state["manifests"]:
            state["manifests"].append(manifest_uri)
        self.dataset.write_json(state, "_state", STATE_FILE)  # commit point
        self.dataset.remove_tree("_staging", run_key)
        self._commit_kafka(covered)
        return IngestResult(manifest_uri, total - bad, bad, offsets)

    # ---------------------------------------------------------------- helpers
    def _writer(self, staging: Any, role: str, key: tuple[str, int], schema: Any) -> RollingParquetWriter:
        return RollingParquetWriter(
            staging / role / key[0] / str(key[1]),
            schema=schema,
            rows_per_group=min(self.settings.rows_per_group, self.settings.rows_per_file),
            rows_per_file=self.settings.rows_per_file,
        )

    def _send_dead_letters(self, quarantine: dict[tuple[str, int], RollingParquetWriter]) -> None:
        """Copy quarantined messages to the dead-letter topic, keyed by their source position.

        Sent before the commit point, so a retry after a crash may send some again
        (at least once); the key ``topic/partition/offset`` lets consumers drop repeats.
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

        for writer in quarantine.values():
            for f in writer.closed:
                with f.staged.open("rb") as fh:
                    for row in pq.read_table(fh).to_pylist():
                        producer.produce(
                            topic,
                            key=f"{row['_topic']}/{row['_partition']}/{row['_offset']}".encode(),
                            value=row["value"],
                            headers={
                                "mlops.error": row["error"].encode(),
                                "mlops.source_topic": row["_topic"].encode(),
                            },
                            on_delivery=delivered,
                        )
                        producer.poll(0)
        remaining = producer.flush(30)
        if remaining or failures:
            raise IngestError(
                f"could not deliver dead letters to topic '{topic}' ({remaining} pending, errors: {failures[:3]}); "
                "nothing was published and no offset was committed"
            )

    def _publish(
        self, writers: dict[tuple[str, int], RollingParquetWriter], role: str, run_key: str
    ) -> list[dict[str, Any]]:
        out = []
        for (topic, partition), writer in sorted(writers.items()):
            for f in writer.close():
                name = f"{f.first:020d}-{f.last:020d}.parquet"
                final = self.dataset.publish(
                    f.staged, role, f"run={run_key}", f"topic={topic}", f"partition={partition}", name
                )
                out.append(_file_entry(role, str(final), topic, partition, f))
        return out

    def _commit_kafka(self, covered: dict[tuple[str, int], tuple[int, int]]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        if not covered:
            return
        try:
            self.consumer.commit(
                offsets=[TopicPartition(t, p, end) for (t, p), (_, end) in covered.items()], asynchronous=False
            )
        except KafkaException as err:
            # The lake state already holds these positions; the group offset is for lag monitoring.
            log.warning("Published to the lake but could not commit Kafka offsets (next run is still exact): %s", err)


def _run_key(plan: Mapping[tuple[str, int], tuple[int, int]], cluster_id: str | None) -> str:
    """Same batch, same key (a retry cleans up its killed attempt). The cluster id is part of it: a broker that
    lost its data starts its offsets at 0 again, and that batch must not overwrite the one read before at 0."""
    text = f"{cluster_id or ''}:" + ",".join(f"{t}/{p}@{start}" for (t, p), (start, _) in sorted(plan.items()))
    return "kafka-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def _file_entry(role: str, uri: str, topic: str, partition: int, f: ClosedFile) -> dict[str, Any]:
    return {"role": role, "uri": uri, "topic": topic, "partition": partition, "first_offset": f.first,
            "last_offset": f.last, "rows": f.rows, "sha256": f.sha256, "schema": f.schema}  # fmt: skip


def consume_into_lake(
    make_consumer: Callable[[], Any],
    dataset: Dataset,
    settings: KafkaBatchSettings,
    make_producer: Callable[[], Any] | None = None,
) -> IngestResult:
    """Run one batch with a fresh consumer, always closing it."""
    consumer = make_consumer()
    try:
        return KafkaBatchIngest(consumer, dataset, settings, make_producer).run()
    finally:
        consumer.close()
