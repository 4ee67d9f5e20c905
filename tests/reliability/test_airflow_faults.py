"""With Airflow's real scheduler, dag-processor, triggerer and API server (LocalExecutor):

* concurrency: a scheduled and a manual run of the same pipeline at once run one after the other
  (``max_active_runs=1``), and the lake and the registry stay consistent;
* secrets: a sentinel secret in each connection never shows in task logs, XCom, rendered template
  fields, run conf, the plugin view, or the reports in the lake and MLflow;
* a task process SIGKILLed mid-write is failed by Airflow, retried, and the retry lands every row once.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mlops_ops.lake.store import Dataset
from mlops_ops.testing.airflow_services import AirflowServices
from mlops_ops.testing.runner import LOADER
from tests.conftest import ROOT
from tests.integration.churn_data import SCHEMA, clean_rows
from tests.integration.lake_helpers import SCHEMA as EVENT_SCHEMA
from tests.integration.lake_helpers import checksum, committed_rows, event, produce

pytestmark = pytest.mark.integration

SENTINELS = {"mlflow": "SENTINEL-mlflow-7f3a9c", "kafka": "SENTINEL-kafka-51d0e2", "spark": "SENTINEL-spark-9b44aa"}
SPEC = """
pipeline: {pipeline}
schedule: "* * * * *"
lake: {lake}
source:
  kafka:
    topics: [{topic}]
    schema: {schema}
    poll_timeout_s: 2
quality:
  suite: churn_raw
preprocess:
  transform: tests.integration.feature_transforms:churn_features
  key_column: customer_id
train:
  trainer: sklearn
  task: classification
  target: churned
  params: {{max_iter: 30}}
evaluate:
  metrics: [roc_auc, accuracy]
promote:
  model_name: {model}
drift:
  schedule: null
"""
KILLED_DAG = """# Airflow DAG file: an ingest task SIGKILLed mid-write on its first try (tests/reliability)
import os
import signal
from datetime import datetime, timedelta

from airflow.sdk import DAG

from mlops_ops.operators.kafka import KafkaToLakeOperator


class KilledOnFirstTry(KafkaToLakeOperator):
    def execute(self, context):
        if context["ti"].try_number == 1:
            from mlops_ops.lake import parquet_files

            real, calls = parquet_files.RollingParquetWriter._flush, {{"n": 0}}

            def flush(writer):
                calls["n"] += 1
                if calls["n"] == 3:  # two row groups written, the third never
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(writer)

            parquet_files.RollingParquetWriter._flush = flush
        return super().execute(context)


with DAG("killed_ingest", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
    KilledOnFirstTry(task_id="ingest", topics=["{topic}"], pipeline="killed", lake="{lake}", schema={schema},
                     rows_per_file=250, poll_timeout_s=2, retries=1, retry_delay=timedelta(seconds=2))
"""


@pytest.fixture(scope="module")
def airflow(stack, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient, NewTopic

    root = tmp_path_factory.mktemp("airflow-faults")
    names = {"pipeline": f"conc_{uuid.uuid4().hex[:6]}", "topic": f"conc-{uuid.uuid4().hex[:6]}",
             "model": f"conc-{uuid.uuid4().hex[:6]}", "lake": str(root / "lake"),
             "killed_topic": f"killed-{uuid.uuid4().hex[:6]}"}  # fmt: skip
    ports = stack.settings.ports
    bootstrap = f"127.0.0.1:{ports['kafka']}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for topic in (names["topic"], names["killed_topic"]):
        admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(10)
    produce(bootstrap, names["topic"], [json.dumps(r).encode() for r in clean_rows(2_000, seed=5)])
    produce(bootstrap, names["killed_topic"], [event(i) for i in range(1_500)])
    dags = root / "dags"
    (dags / "pipelines").mkdir(parents=True)
    (dags / "pipelines" / f"{names['pipeline']}.yaml").write_text(SPEC.format(schema=json.dumps(SCHEMA), **names))
    (dags / "pipelines_dag.py").write_text(LOADER)
    (dags / "killed_ingest.py").write_text(KILLED_DAG.format(topic=names["killed_topic"], lake=names["lake"],
                                                             schema=repr(EVENT_SCHEMA)))  # fmt: skip
    conns = {  # each with a sentinel secret the stack's services ignore
        "AIRFLOW_CONN_MLFLOW_DEFAULT": {"conn_type": "mlflow", "host": "127.0.0.1", "port": ports["mlflow"],
                                        "schema": "http", "login": "mlops", "password": SENTINELS["mlflow"]},
        "AIRFLOW_CONN_KAFKA_DEFAULT": {"conn_type": "kafka", "extra": {
            "bootstrap.servers": bootstrap, "sasl.username": "mlops", "sasl.password": SENTINELS["kafka"]}},
        "AIRFLOW_CONN_SPARK_DEFAULT": {"conn_type": "mlops_spark", "host": "local[2]", "extra": {
            "conf": {"spark.hadoop.fs.s3a.secret.key": SENTINELS["spark"]}}},
    }  # fmt: skip
    env = {k: json.dumps(v) for k, v in conns.items()}
    env["MLOPS_OPS_GX_ROOT"] = str(ROOT / "great_expectations")
    services = AirflowServices(root / "airflow", dags, stack.environment(), extra_env=env, python_path=[ROOT])
    services.start()
    try:
        yield {**names, "services": services, "root": root, "s3_secret": stack.settings.s3_secret_key,
               "bootstrap": bootstrap,
               "mlflow": f"http://127.0.0.1:{ports['mlflow']}"}  # fmt: skip
    finally:
        services.stop()


def _finished_runs(services: AirflowServices, dag_id: str) -> list[dict[str, Any]]:
    return [r for r in services.runs(dag_id) if r["state"] in ("success", "failed")]


def test_scheduled_and_manual_runs_at_once_keep_the_lake_and_registry_consistent(airflow) -> None:  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    services: AirflowServices = airflow["services"]
    dag_id = f"{airflow['pipeline']}__training"
    # unpaused at creation with a per-minute schedule: the scheduler creates a scheduled run right away
    services.wait_for("a scheduled run", lambda: [r for r in services.runs(dag_id) if r["run_type"] == "scheduled"])
    status, manual = services.request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                                      {"logical_date": None, "conf": {"reason": "manual while scheduled"}})  # fmt: skip
    assert status == 200, manual
    overlap = []

    def both_done() -> bool:
        runs = services.runs(dag_id)
        overlap.append(sum(r["state"] == "running" for r in runs))
        finished = {r["run_type"] for r in runs if r["state"] in ("success", "failed")}
        return {"scheduled", "manual"} <= finished

    services.wait_for("the scheduled and the manual run to finish", both_done, timeout=600, every=1)
    services.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": True})  # no more per-minute runs
    runs = _finished_runs(services, dag_id)
    assert all(r["state"] == "success" for r in runs), [(r["dag_run_id"], r["state"]) for r in runs]
    assert max(overlap) == 1  # never two runs of the pipeline at once
    spans = sorted((datetime.fromisoformat(r["start_date"]), datetime.fromisoformat(r["end_date"])) for r in runs)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))

    raw = Dataset.at(airflow["lake"], airflow["pipeline"], "raw")
    ids = [r["customer_id"] for r in committed_rows(raw)]
    assert len(ids) == 2_000 and len(set(ids)) == 2_000  # ingested once, by whichever run came first
    client = MlflowClient(airflow["mlflow"], airflow["mlflow"])
    versions = client.search_model_versions(f"name = '{airflow['model']}'")
    trained = sum(services.task_states(dag_id, r["dag_run_id"]).get("train") == "success" for r in runs)
    assert len(versions) == trained >= 2  # one version per training, no duplicates, none half-registered
    champion = client.get_model_version_by_alias(airflow["model"], "champion")
    assert champion.tags["mlops_ops.blessed"] == "true"

    # the drift DAG runs too, so its report is among what the secrets test scans
    produce(airflow["bootstrap"], airflow["topic"], [json.dumps(r).encode() for r in clean_rows(1_000, seed=6,
                                                                                           start=2_000)])  # fmt: skip
    drift_id = f"{airflow['pipeline']}__drift"
    status, drift_run = services.request("POST", f"/api/v2/dags/{drift_id}/dagRuns", {"logical_date": None})
    assert status == 200, drift_run
    (done,) = services.wait_for("the drift run", lambda: _finished_runs(services, drift_id), timeout=300, every=2)
    assert services.task_states(drift_id, done["dag_run_id"])["drift_check"] == "success", services.logs()


def _scan(texts: dict[str, str], secrets: dict[str, str]) -> list[str]:
    return [f"{name} in {where}" for where, text in texts.items() for name, secret in secrets.items() if secret in text]


def test_no_secret_reaches_logs_xcom_rendered_fields_views_or_reports(airflow, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    services: AirflowServices = airflow["services"]
    secrets = {**SENTINELS, "s3": airflow["s3_secret"]}
    texts: dict[str, str] = {}
    home: Path = services.home
    for path in [*home.rglob("*.log"), *(home / "logs").rglob("*")]:  # process logs and every task log
        if path.is_file():
            texts[str(path)] = path.read_text(errors="replace")
    assert any("/logs/" in p and "train" in p for p in texts), "no task logs found to scan"
    db = sqlite3.connect(home / "airflow.db")
    try:
        texts["xcom"] = "\n".join(str(v) for (v,) in db.execute("SELECT value FROM xcom"))
        texts["rendered fields"] = "\n".join(str(v) for (v,) in db.execute(
            "SELECT rendered_fields FROM rendered_task_instance_fields"))  # fmt: skip
        texts["run conf"] = "\n".join(str(v) for (v,) in db.execute("SELECT conf FROM dag_run"))
    finally:
        db.close()
    assert "manifest_uri" in texts["xcom"] and texts["rendered fields"]
    texts["plugin view"] = json.dumps(services.request("GET", "/mlops-ops/api/pipelines")[1])
    for path in Path(airflow["lake"]).rglob("*"):  # manifests, Data Docs, drift reports
        if path.is_file() and path.suffix in (".json", ".html"):
            texts[str(path)] = path.read_text(errors="replace")
    assert any(p.endswith("drift.html") for p in texts) and any("_data_docs" in p for p in texts)
    client = MlflowClient(airflow["mlflow"], airflow["mlflow"])
    for name in (airflow["model"], f"{airflow['model']}-monitoring"):
        experiment = client.get_experiment_by_name(name)
        for run in client.search_runs([experiment.experiment_id]) if experiment else []:
            texts[f"mlflow run {run.info.run_id} params/tags"] = json.dumps([run.data.params, run.data.tags])
            folder = tmp_path / run.info.run_id
            client.download_artifacts(run.info.run_id, "", str(folder))
            for path in folder.rglob("*"):
                if path.is_file() and path.suffix in (".json", ".html", ".yaml", ".txt", ".MLmodel", ""):
                    texts[f"mlflow {run.info.run_id}/{path.relative_to(folder)}"] = path.read_text(errors="replace")
    assert any("evaluation/report.json" in k for k in texts) and any("drift/report.html" in k for k in texts)

    texts_with_control = {**texts, "control": f"password={SENTINELS['kafka']}"}
    assert _scan(texts_with_control, secrets) == ["kafka in control"]  # the scan does find a secret
    assert _scan(texts, secrets) == [], f"{len(texts)} places scanned"


def test_task_process_killed_mid_write_is_retried_and_lands_every_row_once(airflow) -> None:  # type: ignore[no-untyped-def]
    services: AirflowServices = airflow["services"]
    services.wait_for("killed_ingest to be parsed",
                      lambda: services.request("GET", "/api/v2/dags/killed_ingest")[0] == 200)  # fmt: skip
    services.request("PATCH", "/api/v2/dags/killed_ingest", {"is_paused": False})
    status, run = services.request("POST", "/api/v2/dags/killed_ingest/dagRuns", {"logical_date": None})
    assert status == 200, run
    services.wait_for("killed_ingest to finish", lambda: _finished_runs(services, "killed_ingest"), timeout=300)
    (done,) = _finished_runs(services, "killed_ingest")
    path = f"/api/v2/dags/killed_ingest/dagRuns/{quote(done['dag_run_id'], safe='')}/taskInstances/ingest"
    _, ti = services.request("GET", path)
    assert done["state"] == "success" and ti["try_number"] == 2, (ti, services.logs())
    _, tries = services.request("GET", f"{path}/tries")
    assert [t["state"] for t in sorted(tries["task_instances"], key=lambda t: t["try_number"])] == ["failed", "success"]
    rows = committed_rows(Dataset.at(airflow["lake"], "killed", "raw"))
    assert len(rows) == 1_500
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(1_500)])
