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
from mlops_ops.lake.kafka_ingest import KafkaBatchSettings, consume_into_lake
from mlops_ops.lake.records import json_decoder
from mlops_ops.lake.store import Dataset
from mlops_ops.stack import process
from mlops_ops.stack.services import tansu_binary
from tests.conftest import ROOT
from tests.integration.lake_helpers import SCHEMA, checksum, committed_rows, event, produce


def _ingest_subprocess(topic: str, lake: str, pipeline: str, point: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.integration.kill_ingest", topic, lake, pipeline, point],
        cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.mark.parametrize("point", ["mid-write", "before-commit", "before-kafka-commit"])
def test_sigkill_then_rerun_gives_exactly_the_messages(stack, bootstrap, topic, point) -> None:  # type: ignore[no-untyped-def]
    lake, pipeline = "s3://mlops-lake/faults", f"k{uuid.uuid4().hex[:8]}"
    produce(bootstrap, topic, [event(i) for i in range(1_200)])
    killed = _ingest_subprocess(topic, lake, pipeline, point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    produce(bootstrap, topic, [event(i) for i in range(1_200, 1_300)])  # more arrive before the retry
    retry = _ingest_subprocess(topic, lake, pipeline, "none")
    assert retry.returncode == 0, retry.stderr[-2000:]
    rows = committed_rows(Dataset.at(lake, pipeline, "raw", conn_id="aws_default"))
    assert len(rows) == 1_300
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(1_300)])
    # the retry published once; an extra run finds nothing new
    assert _ingest_subprocess(topic, lake, pipeline, "none").stdout.strip().endswith("rows=0")


def test_broker_down_then_back(stack, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    port = process.pick_free_ports(1)[0]
    conn = {"conn_type": "kafka", "extra": {"bootstrap.servers": f"127.0.0.1:{port}"}}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_LATER", json.dumps(conn))
    dataset = Dataset.at("s3://mlops-lake/faults", f"d{uuid.uuid4().hex[:8]}", "raw", conn_id="aws_default")
    hook = LakeConsumerHook(topics=["later"], group_id="g-later", kafka_config_id="kafka_later")
    settings = KafkaBatchSettings(topics=["later"], decoder=json_decoder, schema=SCHEMA, poll_timeout_s=10)
    started = time.monotonic()
    with pytest.raises(IngestError, match="Kafka is unreachable"):
        consume_into_lake(lambda: hook.get_conn, dataset, settings)
    assert time.monotonic() - started < 60
    assert dataset.read_json("_state", "kafka.json") is None  # nothing committed
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
        result = consume_into_lake(lambda: retry_hook.get_conn, dataset, settings)
        assert result.rows == 300
        assert len(committed_rows(dataset)) == 300
    finally:
        process.stop(record)
