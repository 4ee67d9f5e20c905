"""Faults with real processes: SIGKILL mid-run, and a broker that is down then back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from mlops_ops.exceptions import IngestError
from mlops_ops.hooks.kafka import LakeConsumerHook
from mlops_ops.lake.kafka_ingest import KafkaBatchSettings, stage_from_kafka
from mlops_ops.lake.records import json_decoder
from mlops_ops.stack import process
from mlops_ops.stack.services import tansu_binary
from tests.conftest import ROOT
from tests.integration.lake_helpers import SCHEMA, checksum, committed_rows, event, new_tables, pipeline_tables, produce


def _ingest(topic: str, pipeline: str, point: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "tests.integration.kill_ingest", topic, pipeline, point],
                            cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=180)
    return proc.returncode, out, err


def _pipeline() -> str:
    return f"k{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("point", ["mid-write", "after-stage", "after-dead-letters"])
def test_sigkill_then_rerun_gives_exactly_the_messages(stack, bootstrap, topic, point) -> None:  # type: ignore[no-untyped-def]
    pipeline = _pipeline()
    produce(bootstrap, topic, [event(i) for i in range(1_200)] + [b"not json"] * 3)
    code, _, err = _finish(_ingest(topic, pipeline, point))
    assert code == -9, err[-2000:]
    produce(bootstrap, topic, [event(i) for i in range(1_200, 1_300)])  # more arrive before the retry
    code, out, err = _finish(_ingest(topic, pipeline, "none"))
    assert code == 0, err[-2000:]
    code, out2, err = _finish(_ingest(topic, pipeline, "none"))  # after a staged batch, a second run reads the rest
    tables = pipeline_tables(pipeline)
    rows = committed_rows(tables)
    assert len(rows) == 1_300, (out, out2)
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(1_300)])
    assert len(committed_rows(tables, "raw_dead_letters")) == 3  # decided once, with the batch
    assert _finish(_ingest(topic, pipeline, "none"))[1].strip().endswith("rows=0")  # nothing new


def test_sigkill_at_twenty_random_moments_loses_and_duplicates_nothing(stack, bootstrap, topic) -> None:  # type: ignore[no-untyped-def]
    """Kill the ingest process at 20 random moments (reading, writing files, staging, auditing, publishing,
    committing dead letters), with messages still arriving between attempts; then let one run finish."""
    import random

    rng = random.Random(20261125)
    pipeline = _pipeline()
    produced = 0
    kills = 0
    for _ in range(20):
        produce(bootstrap, topic, [event(i) for i in range(produced, produced + 300)] + [b"bad"])
        produced += 300
        proc = _ingest(topic, pipeline, "none")
        time.sleep(rng.uniform(0.5, 4.0))  # interpreter start is ~2 s: the kill lands anywhere in the run
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate(timeout=60)
    for _ in range(3):  # a batch may have been left staged: one run publishes it, the next reads the rest
        assert _finish(_ingest(topic, pipeline, "none"))[0] == 0
    tables = pipeline_tables(pipeline)
    rows = committed_rows(tables)
    assert kills >= 10  # most attempts really died mid-run
    assert len(rows) == produced and checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(produced)])
    dead = committed_rows(tables, "raw_dead_letters")
    assert len(dead) == 20 and len({(d["_partition"], d["_offset"]) for d in dead}) == 20


def test_broker_down_then_back(stack, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    port = process.pick_free_ports(1)[0]
    conn = {"conn_type": "kafka", "extra": {"bootstrap.servers": f"127.0.0.1:{port}"}}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_LATER", json.dumps(conn))
    tables = new_tables("d")
    hook = LakeConsumerHook(topics=["later"], group_id="g-later", kafka_config_id="kafka_later")
    settings = KafkaBatchSettings(topics=["later"], decoder=json_decoder, schema=SCHEMA, poll_timeout_s=10)
    started = time.monotonic()
    with pytest.raises(IngestError, match="Kafka is unreachable"):
        stage_from_kafka(lambda: hook.get_conn, tables, settings)
    assert time.monotonic() - started < 60
    assert committed_rows(tables) == []  # nothing committed
    url = f"tcp://127.0.0.1:{port}"
    record = process.spawn([tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
                           pidfile=tmp_path / "k.pid", logfile=tmp_path / "k.log", env=dict(os.environ),
                           cwd=tmp_path)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not process.port_is_open(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        produce(f"127.0.0.1:{port}", "later", [event(i) for i in range(300)])
        retry_hook = LakeConsumerHook(topics=["later"], group_id="g-later", kafka_config_id="kafka_later")
        result = stage_from_kafka(lambda: retry_hook.get_conn, tables, settings)
        assert result.rows == 300 and result.staged is not None
        from mlops_ops.lake import batches

        batches.publish(tables, tables.load("raw"), result.staged)
        assert len(committed_rows(tables)) == 300
    finally:
        process.stop(record)
