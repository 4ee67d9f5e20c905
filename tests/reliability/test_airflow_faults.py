"""With Airflow's real scheduler, dag-processor, triggerer and API server (LocalExecutor, PostgreSQL metadata DB):

* concurrency: scheduled, manual and backfill runs writing the same ``raw`` table at once (the factory's
  ingest DAG and a hand-written writer DAG that allows 4 active runs), with a producer still writing:
  commits are conditional, losers retry from the winner's position, every produced row lands exactly once,
  and the registry holds one version per successful training;
* secrets: a sentinel secret in each connection (stored in the metadata database, as a deployment keeps them) never
  shows in task logs, XCom, rendered template fields, run conf, the plugin view, the reports in the lake and MLflow,
  or the API server's environment after its ML pipelines view has read the champion from MLflow;
* a task process SIGKILLed mid-write is failed by Airflow, retried, and the retry lands every row once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from mlops_ops.testing.airflow_services import AirflowServices
from mlops_ops.testing.runner import LOADER
from tests.conftest import ROOT
from tests.integration.churn_data import SCHEMA, clean_rows
from tests.integration.conftest import fresh_database
from tests.integration.lake_helpers import SCHEMA as EVENT_SCHEMA
from tests.integration.lake_helpers import checksum, committed_rows, event, pipeline_tables, produce
from tests.integration.secret_scan import found, metadata_texts

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
  task: binary
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
    KilledOnFirstTry(task_id="ingest", topics=["{topic}"], pipeline="{pipeline}", lake="{lake}", schema={schema},
                     rows_per_file=250, poll_timeout_s=2, retries=1, retry_delay=timedelta(seconds=2))
"""
WRITER_DAG = """# Airflow DAG file: a second writer of the pipeline's raw table, 4 runs at a time (tests/reliability)
# The table's Kafka source is gated (the pipeline has a quality stage), so this writer stages and runs the same gate:
# one that published at once would be refused (N3).
from datetime import datetime, timedelta

from airflow.sdk import DAG

from mlops_ops.operators.gx import QualityGateOperator
from mlops_ops.operators.kafka import KafkaToLakeOperator

with DAG("conc_writer", schedule="* * * * *", start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=4,
         default_args={{"retries": 6, "retry_delay": timedelta(seconds=3)}}):
    ingest = KafkaToLakeOperator(task_id="ingest", topics=["{topic}"], pipeline="{pipeline}", lake="{lake}",
                                 schema={schema}, poll_timeout_s=2, publish=False)
    ingest >> QualityGateOperator(task_id="gate", pipeline="{pipeline}", lake="{lake}", suite="churn_raw")
"""


@pytest.fixture(scope="module")
def airflow(postgres_stack, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient, NewTopic

    stack = postgres_stack  # PostgreSQL: the writers' runs, a backfill and the REST calls must not queue on SQLite
    root = tmp_path_factory.mktemp("airflow-faults")
    names = {"pipeline": f"conc_{uuid.uuid4().hex[:6]}", "topic": f"conc-{uuid.uuid4().hex[:6]}",
             "model": f"conc-{uuid.uuid4().hex[:6]}", "lake": str(root / "lake"),
             "killed_topic": f"killed-{uuid.uuid4().hex[:6]}", "killed": f"killed_{uuid.uuid4().hex[:6]}"}  # fmt: skip
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
    killed = KILLED_DAG.format(topic=names["killed_topic"], lake=names["lake"], schema=repr(EVENT_SCHEMA),
                               pipeline=names["killed"])  # fmt: skip
    (dags / "killed_ingest.py").write_text(killed)
    writer = WRITER_DAG.format(topic=names["topic"], lake=names["lake"], schema=repr(SCHEMA),
                               pipeline=names["pipeline"])  # fmt: skip
    (dags / "conc_writer.py").write_text(writer)
    conns = {  # each with a sentinel secret the stack's services ignore
        "mlflow_default": {"conn_type": "mlflow", "host": "127.0.0.1", "port": ports["mlflow"], "schema": "http",
                           "login": "mlops", "password": SENTINELS["mlflow"]},
        "kafka_default": {"conn_type": "kafka", "extra": {
            "bootstrap.servers": bootstrap, "sasl.username": "mlops", "sasl.password": SENTINELS["kafka"]}},
        "spark_default": {"conn_type": "mlops_spark", "host": "local[2]", "extra": {
            "conf": {"spark.hadoop.fs.s3a.secret.key": SENTINELS["spark"]}}},
    }  # fmt: skip
    audit = root / "environ-audit"  # each Airflow process records its environment here (environ_audit/)
    audit.mkdir()
    env = {"MLOPS_OPS_GX_ROOT": str(ROOT / "great_expectations"), "MLOPS_ENVIRON_AUDIT": str(audit)}
    services = AirflowServices(root / "airflow", dags, stack.environment(), extra_env=env,
                               python_path=[ROOT, Path(__file__).parent / "environ_audit"],
                               database_url=fresh_database(stack), migrate=False, connections=conns)  # fmt: skip
    services.start()
    try:
        yield {**names, "services": services, "root": root, "s3_secret": stack.settings.s3_secret_key, "audit": audit,
               "bootstrap": bootstrap,
               "mlflow": f"http://127.0.0.1:{ports['mlflow']}"}  # fmt: skip
    finally:
        services.stop()


def _finished_runs(services: AirflowServices, dag_id: str) -> list[dict[str, Any]]:
    return [r for r in services.runs(dag_id) if r["state"] in ("success", "failed")]


def test_scheduled_manual_and_backfill_writers_at_once_land_every_row_once(airflow) -> None:  # type: ignore[no-untyped-def]
    import threading
    from datetime import UTC, timedelta

    from mlflow import MlflowClient

    services: AirflowServices = airflow["services"]
    ingest_id, training_id = f"{airflow['pipeline']}__ingest", f"{airflow['pipeline']}__training"
    for dag_id in (ingest_id, "conc_writer"):
        services.wait_for(
            f"{dag_id} to be parsed", lambda d=dag_id: services.request("GET", f"/api/v2/dags/{d}")[0] == 200
        )
        services.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    # a producer keeps writing while every kind of run writes raw
    produced = {"n": 2_000}
    stop = threading.Event()

    def keep_producing() -> None:
        while not stop.is_set():
            start = produced["n"]
            produce(airflow["bootstrap"], airflow["topic"],
                    [json.dumps(r).encode() for r in clean_rows(100, seed=start, start=start)])  # fmt: skip
            produced["n"] += 100
            stop.wait(0.5)

    producer = threading.Thread(target=keep_producing, daemon=True)
    producer.start()
    try:
        services.wait_for("a scheduled ingest run", lambda: [r for r in services.runs(ingest_id)
                                                           if r["run_type"] == "scheduled"])  # fmt: skip
        for dag_id in (ingest_id, "conc_writer"):
            status, body = services.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
            assert status == 200, body
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        request = {"dag_id": "conc_writer", "from_date": (now - timedelta(minutes=4)).isoformat(),
                   "to_date": now.isoformat(), "max_active_runs": 4, "reprocess_behavior": "completed"}  # fmt: skip
        status, backfill = services.request("POST", "/api/v2/backfills", request)
        assert status == 200, backfill
        services.wait_for("backfill runs", lambda: [r for r in services.runs("conc_writer")
                                                    if r["run_type"] == "backfill"], timeout=120)  # fmt: skip
        overlap: list[int] = []

        def settled() -> bool:
            runs = services.runs(ingest_id) + services.runs("conc_writer")
            overlap.append(sum(r["state"] == "running" for r in runs))
            kinds = {r["run_type"] for r in runs if r["state"] in ("success", "failed")}
            return {"scheduled", "manual", "backfill"} <= kinds and all(
                r["state"] in ("success", "failed") for r in runs if r["run_type"] in ("manual", "backfill")
            )

        services.wait_for("the runs to finish", settled, timeout=600, every=1)
    finally:
        stop.set()
        producer.join(timeout=30)
    services.request("PATCH", "/api/v2/dags/conc_writer", {"is_paused": True})
    assert max(overlap) >= 2, "the writers never overlapped: the test proved nothing"
    services.wait_for("every writer run to end", lambda: all(
        r["state"] in ("success", "failed") for r in services.runs("conc_writer")), timeout=600, every=2)  # fmt: skip
    # one last run picks up whatever arrived after the others read (and decides anything left staged)
    status, last = services.request("POST", f"/api/v2/dags/{ingest_id}/dagRuns", {"logical_date": None})
    assert status == 200, last
    services.wait_for("the last ingest run", lambda: next((r for r in services.runs(ingest_id)
                      if r["dag_run_id"] == last["dag_run_id"] and r["state"] in ("success", "failed")), None),
                      timeout=300, every=2)  # fmt: skip
    services.request("PATCH", f"/api/v2/dags/{ingest_id}", {"is_paused": True})  # no more per-minute runs
    tables = pipeline_tables(airflow["pipeline"])
    ids = [r["customer_id"] for r in committed_rows(tables)]
    assert len(ids) == len(set(ids)) == produced["n"]  # every produced row, once, whoever wrote it
    assert checksum(ids) == checksum([f"c{i:07d}" for i in range(produced["n"])])
    failed = [r for r in services.runs("conc_writer") + services.runs(ingest_id) if r["state"] == "failed"]
    assert failed == [], [(r["dag_id"], r["dag_run_id"]) for r in failed]  # losers retried from the winner's end

    # training ran on published batches; one version per successful training, none half-registered
    services.wait_for("training runs to settle", lambda: services.runs(training_id) and all(
        r["state"] in ("success", "failed") for r in services.runs(training_id)), timeout=600, every=2)  # fmt: skip
    runs = _finished_runs(services, training_id)
    client = MlflowClient(airflow["mlflow"], airflow["mlflow"])
    versions = client.search_model_versions(f"name = '{airflow['model']}'")
    trained = sum(services.task_states(training_id, r["dag_run_id"]).get("train") == "success" for r in runs)
    assert len(versions) == trained >= 1
    champion = client.get_model_version_by_alias(airflow["model"], "champion")
    assert champion.tags["mlops_ops.blessed"] == "true"

    # the drift DAG runs too, so its report is among what the secrets test scans: new data is ingested first
    fresh = clean_rows(1_000, seed=6, start=9_000_000)
    produce(airflow["bootstrap"], airflow["topic"], [json.dumps(r).encode() for r in fresh])
    services.request("PATCH", f"/api/v2/dags/{ingest_id}", {"is_paused": False})
    status, more = services.request("POST", f"/api/v2/dags/{ingest_id}/dagRuns", {"logical_date": None})
    assert status == 200, more
    services.wait_for("the ingest of new data", lambda: next((r for r in services.runs(ingest_id)
                      if r["dag_run_id"] == more["dag_run_id"] and r["state"] == "success"), None),
                      timeout=300, every=2)  # fmt: skip
    services.request("PATCH", f"/api/v2/dags/{ingest_id}", {"is_paused": True})
    drift_id = f"{airflow['pipeline']}__drift"
    status, drift_run = services.request("POST", f"/api/v2/dags/{drift_id}/dagRuns", {"logical_date": None})
    assert status == 200, drift_run
    (done,) = services.wait_for("the drift run", lambda: _finished_runs(services, drift_id), timeout=300, every=2)
    assert services.task_states(drift_id, done["dag_run_id"])["drift_check"] == "success", services.logs()


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
    texts.update(metadata_texts(services.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    assert "snapshot_id" in texts["xcom"] and texts["rendered fields"]
    texts["plugin view"] = json.dumps(services.request("GET", "/mlops-ops/api/pipelines")[1])
    for path in Path(airflow["lake"]).rglob("*"):  # Data Docs, drift reports
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
    assert found(texts_with_control, secrets) == ["kafka in control"]  # the scan does find a secret
    assert found(texts, secrets) == [], f"{len(texts)} places scanned"


def _audit_records(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in folder.glob("*.jsonl") for line in path.read_text().splitlines()]


def test_api_server_environment_holds_no_connection_secret(airflow) -> None:  # type: ignore[no-untyped-def]
    """The ML pipelines view reads the champion from MLflow with the connection's password (stored in the metadata
    database); no API server process holds that password, or any connection's, in its environment: neither the
    environment it started with nor any ``os.environ`` change since (recorded by ``environ_audit/sitecustomize.py``)."""
    services: AirflowServices = airflow["services"]
    status, rows = services.request("GET", "/mlops-ops/api/pipelines")
    assert status == 200, rows
    (row,) = [r for r in rows if r["pipeline"] == airflow["pipeline"]]
    assert row["champion_version"] and row["errors"] == [], row  # the view did use the MLflow connection
    records = _audit_records(airflow["audit"])
    api = [r for r in records if r["role"] == "api-server"]
    assert any(r["event"] == "start" and "api-server" in r["argv"] for r in api), "the API server was not audited"
    started = {f"api-server {r['pid']} start": json.dumps(r["environ"]) for r in api if r["event"] == "start"}
    changed = {"api-server environment changes": json.dumps([[r["key"], r["value"]] for r in api
                                                             if r["event"] == "putenv"])}  # fmt: skip
    # positive control: the same records do show a task process exporting the MLflow password (docs/security.md)
    tasks = [r for r in records if r["role"] == "scheduler" and r["event"] == "putenv"]
    assert ["MLFLOW_TRACKING_PASSWORD", SENTINELS["mlflow"]] in [[r["key"], r["value"]] for r in tasks]
    assert found({**started, **changed}, SENTINELS) == []


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
    rows = committed_rows(pipeline_tables(airflow["killed"]))
    assert len(rows) == 1_500
    assert checksum([r["id"] for r in rows]) == checksum([f"e{i}" for i in range(1_500)])
