"""Each service of the embedded stack stopped in the middle of the stage that uses it, then brought back.

The stage must fail with an error that names what is down, leave nothing half-done (no lake rows
committed twice or lost, no half-registered model, champion unchanged), and a retry must recover.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlops_ops.hooks.kafka import LakeConsumerHook
from mlops_ops.lake import batches, parquet_files
from mlops_ops.lake.kafka_ingest import IngestResult, KafkaBatchSettings, stage_from_kafka
from mlops_ops.lake.records import json_decoder
from mlops_ops.lake.tables import PipelineTables
from tests.conftest import ROOT
from tests.integration.churn_data import churn_feature_table, clean_rows, land_batch, to_csv
from tests.integration.lake_helpers import SCHEMA, checksum, committed_rows, event, new_tables, produce
from tests.reliability.services import restart_stack, stop_service

pytestmark = pytest.mark.integration


def consume_into_lake(make_consumer: Any, tables: PipelineTables, settings: KafkaBatchSettings) -> IngestResult:
    """Stage and publish one batch (the ingest task without a gate)."""
    return stage_from_kafka(make_consumer, tables, settings,
                            publish=lambda staged: batches.publish(tables, tables.load("raw"), staged))  # fmt: skip


def test_s3_stopped_mid_ingest_then_retry_lands_every_row_once(stack, bootstrap, topic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    produce(bootstrap, topic, [event(i) for i in range(3_000)])
    dataset = new_tables("s3down")
    pipeline = dataset.pipeline
    settings = KafkaBatchSettings(topics=[topic], decoder=json_decoder, schema=SCHEMA, rows_per_file=500,
                                  rows_per_group=250, poll_timeout_s=10)  # fmt: skip
    group = f"g-{pipeline}"
    real_flush, flushes = parquet_files.RollingParquetWriter._flush, {"n": 0}

    def flush_then_lose_s3(self):  # type: ignore[no-untyped-def]
        flushes["n"] += 1
        if flushes["n"] == 3:  # two files written, S3 goes away under the third
            stop_service(stack, "s3")
        return real_flush(self)

    monkeypatch.setattr(parquet_files.RollingParquetWriter, "_flush", flush_then_lose_s3)
    hook = LakeConsumerHook(topics=[topic], group_id=group)
    started = time.monotonic()
    try:
        with pytest.raises(Exception) as failure:
            consume_into_lake(lambda: hook.get_conn, dataset, settings)
        assert time.monotonic() - started < 120
        text = str(failure.value)
        assert "NETWORK_CONNECTION" in text or "connect" in text.lower(), failure.value
    finally:
        monkeypatch.setattr(parquet_files.RollingParquetWriter, "_flush", real_flush)
        restart_stack(stack)
    assert committed_rows(dataset) == []  # nothing committed, so nothing to duplicate later

    retry_hook = LakeConsumerHook(topics=[topic], group_id=group)
    result = consume_into_lake(lambda: retry_hook.get_conn, dataset, settings)
    rows = committed_rows(dataset)
    assert result.rows == len(rows) == 3_000
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(3_000)])
    again = consume_into_lake(lambda: LakeConsumerHook(topics=[topic], group_id=group).get_conn, dataset, settings)
    assert again.staged is None and len(committed_rows(dataset)) == 3_000


@pytest.fixture(scope="module")
def features_manifest(stack) -> str:  # type: ignore[no-untyped-def]
    return churn_feature_table(stack, new_tables("faults"))


def _train(stack: Any, manifest: str, name: str, *, epochs: int) -> subprocess.Popen[str]:
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{stack.settings.ports['mlflow']}",
           "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}  # fmt: skip
    argv = [sys.executable, "-m", "mlops_ops.training", "--features", manifest,
            "--model", '{"task": "binary", "target": "churned"}', "--trainer", "torch_mlp", "--model-name", name,
            "--params", f'{{"epochs": {epochs}, "hidden": [16], "batch_size": 64}}']  # fmt: skip
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_mlflow_stopped_mid_training_registers_nothing_and_keeps_the_champion(stack, features_manifest) -> None:  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    uri = f"http://127.0.0.1:{stack.settings.ports['mlflow']}"
    client, name = MlflowClient(uri, uri), f"fault-{uuid.uuid4().hex[:8]}"
    first = _train(stack, features_manifest, name, epochs=2)
    assert first.wait(300) == 0, first.stdout.read() if first.stdout else ""
    client.set_registered_model_alias(name, "champion", "1")

    second = _train(stack, features_manifest, name, epochs=400)  # long enough to pull the plug under it
    experiment = client.get_experiment_by_name(name)
    deadline = time.monotonic() + 120
    while not client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"):
        assert time.monotonic() < deadline and second.poll() is None, "the second training never started"
        time.sleep(0.2)
    time.sleep(1.0)  # a few epochs logged
    stop_service(stack, "mlflow")
    try:
        output, _ = second.communicate(timeout=300)
        assert second.returncode != 0, output[-2000:]
        assert "Connection refused" in output or "Max retries exceeded" in output, output[-2000:]
    finally:
        restart_stack(stack)
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    assert versions == [1]  # no half-registered version
    assert client.get_model_version_by_alias(name, "champion").version == "1"

    retry = _train(stack, features_manifest, name, epochs=2)
    assert retry.wait(300) == 0
    assert sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'")) == [1, 2]
    assert client.get_model_version_by_alias(name, "champion").version == "1"  # promotion is a separate, gated step


@pytest.mark.parametrize("fault", ["local JVM killed", "task killed", "Spark Connect server stopped"])
def test_spark_job_killed_mid_preprocess_publishes_nothing_then_retry_builds(stack, tmp_path: Path, fault: str) -> None:  # type: ignore[no-untyped-def]
    """Local mode (no ``spark_default``): the task's own JVM dies. With the stack's Spark Connect server: the task
    process dies while the server runs its query, or the server goes away under it. Nothing is committed either way,
    and a retry (on the warm server) builds the table."""
    tables = new_tables("spark")
    land_batch(stack, tables, to_csv(clean_rows(3_000)))
    marker = tmp_path / "udf-running"
    env = {**os.environ, "MLOPS_TEST_UDF_MARKER": str(marker)}
    if fault == "local JVM killed":
        env.pop("AIRFLOW_CONN_SPARK_DEFAULT")  # no connection: local mode, the JVM under the task
    argv = [sys.executable, "-m", "tests.reliability.spark_job", tables.pipeline,
            "tests.reliability.spark_job:slow_features"]  # fmt: skip
    job = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert job.stdout is not None
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(job.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    deadline = time.monotonic() + 180
    while not marker.exists():  # the UDF stage is running
        assert time.monotonic() < deadline and job.poll() is None, "".join(lines)[-2000:]
        time.sleep(0.2)
    if fault == "local JVM killed":
        jvms = [p for p in psutil.Process(job.pid).children(recursive=True) if "java" in p.name()]
        assert jvms, "no Spark JVM under the job"
        for jvm in jvms:
            jvm.send_signal(signal.SIGKILL)
    elif fault == "task killed":
        assert not [p for p in psutil.Process(job.pid).children(recursive=True) if "java" in p.name()]  # warm: none
        job.send_signal(signal.SIGKILL)
    else:
        stop_service(stack, "spark-connect")
    try:
        assert job.wait(120) != 0
        reader.join(10)
        if fault == "Spark Connect server stopped":
            assert "SparkConnect" in "".join(lines) or "UNAVAILABLE" in "".join(lines), "".join(lines)[-2000:]
    finally:
        restart_stack(stack)
    assert committed_rows(tables, "features") == []  # nothing committed

    retry = subprocess.run([*argv[:-1], "tests.integration.feature_transforms:churn_features"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert retry.returncode == 0, retry.stdout[-2000:] + retry.stderr[-2000:]
    assert "rows=" in retry.stdout
    assert len(committed_rows(tables, "features")) == 3_000


def test_broker_stopped_mid_ingest_leaves_whole_batches_only(stack, bootstrap, topic, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The broker goes away while the batch is being written. Whether the batch still completes (the consumer had
    fetched it; only the Kafka offset commit fails, and the lake's own offsets keep the next run exact) or fails,
    the lake holds the whole batch once or nothing. The embedded broker keeps messages in memory, so its restart
    starts empty (a property of the embedded broker, not of Kafka); new messages then land exactly once."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from mlops_ops.exceptions import IngestError

    produce(bootstrap, topic, [event(i) for i in range(3_000)])
    dataset = new_tables("kdown")
    pipeline = dataset.pipeline
    settings = KafkaBatchSettings(topics=[topic], decoder=json_decoder, schema=SCHEMA, rows_per_file=500,
                                  rows_per_group=250, poll_timeout_s=5)  # fmt: skip
    real_flush, flushes = parquet_files.RollingParquetWriter._flush, {"n": 0}

    def flush_then_lose_kafka(self):  # type: ignore[no-untyped-def]
        flushes["n"] += 1
        if flushes["n"] == 3:
            stop_service(stack, "kafka")
        return real_flush(self)

    monkeypatch.setattr(parquet_files.RollingParquetWriter, "_flush", flush_then_lose_kafka)
    hook = LakeConsumerHook(topics=[topic], group_id=f"g-{pipeline}")
    try:
        consume_into_lake(lambda: hook.get_conn, dataset, settings)
    except IngestError as err:
        assert "Kafka" in str(err), err
    finally:
        monkeypatch.setattr(parquet_files.RollingParquetWriter, "_flush", real_flush)
        restart_stack(stack)
    first = [r["id"] for r in committed_rows(dataset)]
    assert len(first) in (0, 3_000) and len(set(first)) == len(first)  # the whole batch or nothing, never twice

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(10)  # the restarted broker is empty
    produce(bootstrap, topic, [event(i) for i in range(3_000, 3_400)])
    result = consume_into_lake(lambda: LakeConsumerHook(topics=[topic], group_id=f"g-{pipeline}").get_conn,
                               dataset, settings)  # fmt: skip
    ids = [r["id"] for r in committed_rows(dataset)]
    assert result.rows == 400 and len(ids) == len(first) + 400
    assert checksum(ids) == checksum(first + [f"e{i}" for i in range(3_000, 3_400)])
