"""The lake's promises, checked over generated histories with a fault at every commit point.

A Hypothesis state machine drives the real engines (Kafka and S3 ingest, the gate's decisions, ``quality release``,
``lake maintain``) against real pyiceberg (SQL catalog on SQLite, warehouse on this disk) while its sources change
under it: messages of every poison kind, retention that moves (also while a run reads), objects that are added,
overwritten, corrupted, deleted, or fail to read. Each lake step runs with at most one fault, drawn by Hypothesis:
a crash before or after one of its commits, or a second writer of the same kind run to its end at that commit;
after a fault the step is retried (twice at most: a writer that loses a race must converge, never wedge).

After every step:

* every Kafka message is in at most one of ``raw`` main, ``raw_quarantine``, ``raw_dead_letters``; one below
  ``raw``'s Kafka position is in exactly one unless retention removed it first; none above it is on ``main``;
  poison never reaches ``main``, good rows never the dead letters;
* every S3 object version the state file names is on ``main`` or in quarantine with all its rows once (or a dead
  letter once); an older version's rows stay on ``main`` only when a person released them;
* ``main`` holds rows of batches the gate passed or a person released, nothing else; a release moves exactly the
  rows its batch held; every batch held is listed by ``quality list`` (whatever maintenance expired);
* a writer that publishes without the gate is refused on a gated table.

Budget: see :mod:`tests.reliability.invariants.settings` (``MLOPS_HARNESS=long`` for the long mode).
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from mlops_ops.exceptions import IngestError, LakeConflictError, LakeWriterError
from mlops_ops.lake import batches, maintenance, transaction
from mlops_ops.lake.kafka_ingest import KafkaBatchIngest, KafkaBatchSettings, parse_cursor
from mlops_ops.lake.records import json_decoder
from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings, read_state, state_key
from mlops_ops.lake.tables import PipelineTables
from tests.reliability.invariants.faults import CommitFaults, Crash, Plan
from tests.reliability.invariants.settings import harness_settings
from tests.reliability.invariants.sources import (
    BUCKET,
    MAX_VALUE_BYTES,
    PARTITIONS,
    POISON,
    PREFIX,
    TOPIC,
    SimKafka,
    SimS3,
)

SCHEMA = {"id": "string", "x": "int"}
KINDS = ["good"] * 14 + sorted(POISON)
NAMES = ["a.csv", "b.csv", "c.csv", "d.csv"]
# what a run may raise without breaking a promise: a batch with too many dead letters, S3 failing for good, a race
EXPECTED = (IngestError, LakeConflictError)
OUTCOMES: collections.Counter[str] = collections.Counter()  # what the histories did (printed with -s)

# a fault first (Hypothesis leans to the first alternative): most steps run with one
GateStep = tuple["Plan | None", bool, "Plan | None"]  # the gate's fault, its verdict, a release's fault (or none)
faults = st.builds(Plan, st.integers(1, 3), st.sampled_from(["interleave", "before", "after"])) | st.none()


class LakeHistories(RuleBasedStateMachine):
    workdir: Path

    def __init__(self) -> None:
        super().__init__()
        from pyiceberg.catalog.sql import SqlCatalog

        LakeHistories.counter += 1
        root = self.workdir / f"h{LakeHistories.counter}"
        (root / "wh").mkdir(parents=True)
        self.catalog = SqlCatalog("h", uri=f"sqlite:///{root}/catalog.db", warehouse=f"file://{root}/wh")
        self.faults = CommitFaults(self.catalog)
        self.tables = PipelineTables(self.catalog, "p")
        self.kafka, self.s3 = SimKafka(), SimS3()
        self.passed: set[str] = set()
        self.released: set[str] = set()
        self.held_rows: dict[str, int] = {}  # quarantined batch -> rows, when the gate held it
        self.verdicts: dict[str, bool] = {}

    counter = 0

    @initialize()
    def gated_pipeline(self) -> None:
        """The pipeline has a quality gate: both sources of ``raw`` are decided by it."""
        raw = self.tables.raw({**SCHEMA, **_source_columns()})
        for source in ("kafka", "s3"):
            transaction.begin(raw, source, gated=True)

    # ------------------------------------------------------------------ sources change, then a writer runs
    @rule(
        fault=faults,
        produced=st.lists(st.tuples(st.integers(0, PARTITIONS - 1), st.lists(st.sampled_from(KINDS), max_size=5)),
                          max_size=2),
        retention=st.lists(st.tuples(st.integers(0, PARTITIONS - 1), st.integers(1, 3)), max_size=1),
        max_messages=st.integers(1, 12),
        expire_while_reading=st.integers(0, 2),
        gate=st.none() | st.tuples(faults, st.booleans(), st.none() | faults),
    )  # fmt: skip
    def kafka_run(self, fault: Plan | None, produced: list[tuple[int, list[str]]], retention: list[tuple[int, int]],
                  max_messages: int, expire_while_reading: int, gate: GateStep | None) -> None:  # fmt: skip
        for partition, kinds in produced:
            self.kafka.produce(partition, kinds)
        for partition, count in retention:
            self.kafka.expire(partition, count)
        if expire_while_reading:
            self.kafka.on_consume = lambda: self.kafka.expire(0, expire_while_reading)
        # the second writer: another run of the pipeline whose gate publishes its batch at once
        self._step(fault, lambda: self._kafka(max_messages), twin=lambda: (self._kafka(50), self._gate(True)))
        self.kafka.on_consume = None
        if gate is not None:  # the run's own gate task
            self.gate(*gate)

    @rule(
        fault=faults,
        changes=st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 4), st.sampled_from(["put", "corrupt",
                                                                                               "delete"])),
                         max_size=3),
        flaky_reads=st.integers(0, 2),
        gate=st.none() | st.tuples(faults, st.booleans(), st.none() | faults),
    )  # fmt: skip
    def s3_run(self, fault: Plan | None, changes: list[tuple[str, int, str]], flaky_reads: int,
               gate: GateStep | None) -> None:  # fmt: skip
        for name, rows, change in changes:
            if change == "delete":
                self.s3.delete(name)
            else:
                self.s3.put(name, rows, corrupt=change == "corrupt")
        self.s3.fail_next = flaky_reads
        self._step(fault, self._s3, twin=lambda: (self._s3(), self._gate(True)))
        self.s3.fail_next = 0
        if gate is not None:
            self.gate(*gate)

    @rule(fault=faults, passes=st.booleans(), release=st.none() | faults)
    def gate(self, fault: Plan | None, passes: bool, release: Plan | None = None) -> None:
        self._step(fault, lambda: self._gate(passes))
        if release is not None:  # a person looks at the quarantine at once
            self.release(release, 0)

    @rule(fault=faults, pick=st.integers(0, 10))
    def release(self, fault: Plan | None, pick: int) -> None:
        held = batches.quarantined(self.tables)
        if held:
            batch = held[pick % len(held)]["batch"]
            self._step(fault, lambda: self._release(batch))
            after = _rows(self.tables.load("raw"))
            assert sum(r["_batch"] == batch for r in after) == self.held_rows[batch], f"release of {batch} not exact"
            self._step(None, lambda: self._release(batch))  # a second release changes nothing
            assert _rows(self.tables.load("raw")) == after

    @rule(fault=faults, older_than_days=st.sampled_from([-1.0, 30.0]), compact=st.booleans())
    def maintain(self, fault: Plan | None, older_than_days: float, compact: bool) -> None:
        self._step(fault, lambda: maintenance.maintain(self.tables, older_than_days=older_than_days, keep={},
                                                       compact=compact))  # fmt: skip

    @rule(source=st.sampled_from(["kafka", "s3"]))
    def ungated_writer(self, source: str) -> None:
        """A hand-written DAG that publishes at once (``publish=True``) on the gated pipeline's table (N3)."""
        before = _snapshot_ids(self.tables)
        with pytest.raises(LakeWriterError, match="gate"):
            if source == "kafka":
                KafkaBatchIngest(self.kafka.consumer(), self.tables, self._kafka_settings(50, gated=False)).run(
                    lambda staged: batches.publish(self.tables, self.tables.load("raw"), staged)
                )
            else:
                S3BatchIngest(self.s3.client(), self.tables, self._s3_settings(gated=False)).run()
        assert _snapshot_ids(self.tables) == before  # refused before it read or wrote anything

    # ------------------------------------------------------------------ one step, its fault, its retries
    def _step(self, fault: Plan | None, action: Callable[[], Any], twin: Callable[[], Any] | None = None) -> None:
        def second_writer() -> None:
            with contextlib.suppress(*EXPECTED):
                (twin or action)()

        self.faults.arm(fault, second_writer)
        try:
            action()
            OUTCOMES[f"{action.__name__}: ok" if fault is None or self.faults.fired is None else
                     f"fault {self.faults.fired}: ok"] += 1  # fmt: skip
            return
        except (Crash, *EXPECTED) as err:
            OUTCOMES[f"fault {self.faults.fired}: {type(err).__name__}"] += 1
        finally:
            self.faults.disarm()
        for attempt in (1, 2):  # a retry converges: at most one more lost race (to the twin's leftovers)
            try:
                action()
                return
            except IngestError:
                return  # deterministic: too many dead letters, or S3 failing for good; nothing was committed
            except LakeConflictError:
                if attempt == 2:
                    raise

    def _kafka_settings(self, max_messages: int, *, gated: bool = True) -> KafkaBatchSettings:
        return KafkaBatchSettings(topics=[TOPIC], decoder=json_decoder, schema=SCHEMA, max_messages=max_messages,
                                  poll_timeout_s=0.05, max_bad_share=0.5, max_value_bytes=MAX_VALUE_BYTES,
                                  gated=gated)  # fmt: skip

    def _s3_settings(self, *, gated: bool = True) -> S3BatchSettings:
        return S3BatchSettings(bucket=BUCKET, prefix=PREFIX, format="csv", schema=SCHEMA, attempts=2, backoff_s=0.0,
                               gated=gated)  # fmt: skip

    def _kafka(self, max_messages: int) -> None:
        result = KafkaBatchIngest(self.kafka.consumer(), self.tables, self._kafka_settings(max_messages)).run(None)
        OUTCOMES["kafka: " + ("nothing" if result.staged is None else "resumed" if result.resumed else "staged")] += 1

    def _s3(self) -> None:
        result = S3BatchIngest(self.s3.client(), self.tables, self._s3_settings()).run()
        OUTCOMES["s3: " + ("nothing" if result.staged is None else "resumed" if result.resumed else "staged")] += 1

    def _gate(self, passes: bool) -> None:
        raw = self.tables.load("raw")
        for source in ("kafka", "s3"):
            staged = transaction.pending(raw.refresh(), source)
            if staged is None:
                continue
            # a gate's verdict on the same files is the same whenever it runs again (after a crash, in a twin)
            verdict = self.verdicts.setdefault(staged.batch_id, passes or not transaction.batch_files(raw, staged))
            if verdict:
                self.passed.add(staged.batch_id)
                batches.publish(self.tables, raw, staged, audited=True)
                OUTCOMES[f"published {source}"] += 1
            else:
                self.held_rows[staged.batch_id] = int(staged.summary.get("mlops.rows", "0"))
                batches.quarantine(self.tables, raw, staged, batches.Verdict("suite", [{"expectation": "x"}]))
                OUTCOMES[f"quarantined {source}"] += 1

    def _release(self, batch: str) -> None:
        self.released.add(batch)  # a person's decision, whether or not the process survives carrying it out
        batches.release(self.tables, batch, by="harness", reason="checked by hand")
        OUTCOMES["released"] += 1

    # ------------------------------------------------------------------ the promises
    @invariant()
    def promises_hold(self) -> None:
        raw = self.tables.load("raw")
        if raw is None:
            return
        main = _rows(raw)
        held = _rows(self.tables.load("raw_quarantine"))
        dead = _rows(self.tables.load("raw_dead_letters"))
        self._kafka_records(raw, main, held, dead)
        self._s3_records(raw, main, held, dead)
        # main holds only what the gate passed or a person released
        on_main = {r["_batch"] for r in main}
        assert on_main <= self.passed | self.released, f"unaudited batches on main: {on_main - self.passed}"
        for batch in self.released:  # (later batches may replace a released S3 object's rows: not checked here)
            assert not any(r["_batch"] == batch for r in held), f"{batch} released and still held"
        listed = {b["batch"] for b in batches.quarantined(self.tables)}
        still_held = set(self.held_rows) - self.released
        assert listed == still_held, f"quality list shows {sorted(listed)}, held: {sorted(still_held)}"

    def _kafka_records(self, raw: Any, main: list[dict], held: list[dict], dead: list[dict]) -> None:
        where: dict[tuple[int, int], list[str]] = collections.defaultdict(list)
        for name, rows in (("main", main), ("quarantine", held), ("dead letters", dead)):
            for r in rows:
                if r["_source"] == "kafka":
                    where[(r["_partition"], r["_offset"])].append(name)
        _, position = parse_cursor(transaction.cursor(transaction.head(raw), "kafka"))
        staged = transaction.pending(raw, "kafka")
        in_flight = _staged_offsets(staged)
        for p, o in self.kafka.messages():
            places = where.pop((p, o), [])
            assert len(places) <= 1, f"{TOPIC}/{p}@{o} is in {places}"
            passed = o < position.get(f"{TOPIC}/{p}", 0)
            if passed and not places:
                assert (p, o) in self.kafka.expired, f"{TOPIC}/{p}@{o} was passed and is nowhere"
            if not passed:
                assert places in ([], ["quarantine"], ["dead letters"]) and (not places or (p, o) in in_flight), (
                    f"{TOPIC}/{p}@{o} is beyond raw's position and in {places}"
                )
            kind = self.kafka.kind(p, o)
            if places and kind == "good":
                assert places != ["dead letters"], f"good message {p}@{o} is a dead letter"
            elif places:
                assert places == ["dead letters"], f"poison ({kind}) {p}@{o} is in {places}"
        assert not where, f"rows of messages never produced: {sorted(where)[:5]}"

    def _s3_records(self, raw: Any, main: list[dict], held: list[dict], dead: list[dict]) -> None:
        state = read_state(raw.io, transaction.cursor(transaction.head(raw), "s3"))["objects"]
        count: collections.Counter[tuple[str, str, str]] = collections.Counter()
        for name, rows in (("main", main), ("quarantine", held), ("dead letters", dead)):
            for r in rows:
                if r["_source"] == "s3":
                    count[(name, r["_object_key"], r["_object_etag"])] += 1
        rows_seen = collections.Counter((r["_object_key"], r["_object_etag"], r["_row"]) for r in main
                                        if r["_source"] == "s3")  # fmt: skip
        assert not [k for k, n in rows_seen.items() if n > 1], "an S3 row is twice on main"
        for key in {k for _, k, _ in count}:
            entry = state.get(state_key(BUCKET, key))
            current = entry["etag"] if entry else None
            for name, k, etag in list(count):
                if k != key or etag == current:
                    continue
                if name == "main":  # an older version on main: rows a person released, or the last audited
                    # version while the object's current one waits in quarantine (released, it replaces them)
                    batches_of = {r["_batch"] for r in main if r["_object_key"] == k and r["_object_etag"] == etag}
                    held_now = entry is not None and entry["batch"] in set(self.held_rows) - self.released
                    assert held_now or batches_of <= self.released, f"{k} version {etag} is on main after it changed"
        for skey, entry in state.items():
            key = skey.removeprefix(f"s3://{BUCKET}/")
            on_main, in_q, dl = (count[(n, key, entry["etag"])] for n in ("main", "quarantine", "dead letters"))
            if entry.get("dead_letter"):
                assert (on_main, in_q, dl) == (0, 0, 1), f"dead-letter object {key}: {on_main, in_q, dl}"
            else:
                rows = entry["rows"]
                assert dl == 0 and sorted([on_main, in_q]) == [0, rows], f"{key}: main {on_main}, held {in_q}"
                assert in_q == 0 or entry["batch"] in set(self.held_rows) - self.released


def _source_columns() -> dict[str, str]:
    from mlops_ops.lake.tables import SOURCE_COLUMNS

    return SOURCE_COLUMNS


def _rows(table: Any) -> list[dict[str, Any]]:
    if table is None:
        return []
    data = table.refresh().scan().to_arrow()
    wanted = [c for c in ("_source", "_partition", "_offset", "_object_key", "_object_etag", "_row", "_batch")
              if c in data.column_names]  # fmt: skip
    return data.select(wanted).to_pylist()


def _snapshot_ids(tables: PipelineTables) -> dict[str, Any]:
    out = {}
    for name in ("raw", "raw_quarantine", "raw_dead_letters"):
        table = tables.load(name)
        out[name] = (transaction.head(table).snapshot_id, dict(table.metadata.refs)) if table is not None else None
    return out


def _staged_offsets(staged: transaction.StagedBatch | None) -> set[tuple[int, int]]:
    if staged is None:
        return set()
    import json

    ranges = json.loads(staged.summary.get("mlops.kafka.range", "{}"))
    return {(int(tp.rsplit("/", 1)[1]), o) for tp, (first, nxt) in ranges.items() for o in range(first, nxt)}


def test_lake_promises_hold_over_generated_histories(tmp_path: Path) -> None:
    quiet = logging.getLogger("mlops_ops")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # dead letters and gaps are expected here
    try:
        LakeHistories.workdir = tmp_path
        run_state_machine_as_test(LakeHistories, settings=harness_settings(examples=20, steps=25))
    finally:
        quiet.setLevel(level)  # later tests of this worker read these loggers' records
    print(dict(sorted(OUTCOMES.items())))
