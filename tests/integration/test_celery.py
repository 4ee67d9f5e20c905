"""Two pipelines on the CeleryExecutor: Redis as the broker, PostgreSQL (the stack's) as Airflow's metadata DB and
Celery's result backend, two Celery workers, Airflow's real scheduler, DAG processor, triggerer and API server.

Each pipeline ingests from Kafka, passes its gate, and its training DAG (started by the raw Asset event) trains,
evaluates and promotes; both workers take tasks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_ops.executors import CELERY_CONFIG_OPTIONS
from mlops_ops.executors.preload import DEFAULT_MODULES
from mlops_ops.stack.process import pick_free_ports
from mlops_ops.testing.airflow_services import AirflowServices
from mlops_ops.testing.runner import LOADER
from tests.conftest import ROOT
from tests.integration.churn_data import clean_rows, kafka_pipeline_spec
from tests.integration.conftest import fresh_database
from tests.integration.lake_helpers import produce

TRAIN = "  trainer: sklearn\n  params: {max_iter: 30}"


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):  # as `make test` installs chromium: Debian's package
        for attempt in (["apt-get", "install", "-y", "-q", "redis-server"], ["apt-get", "update", "-q"],
                        ["apt-get", "install", "-y", "-q", "redis-server"]):  # fmt: skip
            subprocess.run(attempt, capture_output=True, check=False, timeout=600)
            if shutil.which("redis-server"):
                break
    found = shutil.which("redis-server")
    if not found:
        pytest.fail("redis-server is missing: apt-get install redis-server")
    return found


@pytest.fixture(scope="module")
def redis(tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("redis")
    (port,) = pick_free_ports(1)
    server = subprocess.Popen([redis_server(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(folder),
                               "--save", "", "--appendonly", "no"], stdout=(folder / "redis.log").open("wb"),
                              stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        import redis as redis_client

        client = redis_client.Redis(host="127.0.0.1", port=port)
        for _ in range(50):
            try:
                client.ping()
                break
            except redis_client.ConnectionError:
                import time

                time.sleep(0.2)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def celery(postgres_stack, redis: str, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient, NewTopic

    stack = postgres_stack
    root = tmp_path_factory.mktemp("celery")
    bootstrap = f"127.0.0.1:{stack.settings.ports['kafka']}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    dags = root / "dags"
    (dags / "pipelines").mkdir(parents=True)
    (dags / "pipelines_dag.py").write_text(LOADER)
    pipelines = []
    for i in range(2):
        names = {"pipeline": f"cel{i}_{uuid.uuid4().hex[:6]}", "topic": f"cel{i}-{uuid.uuid4().hex[:6]}",
                 "model": f"cel{i}-{uuid.uuid4().hex[:6]}"}  # fmt: skip
        admin.create_topics([NewTopic(names["topic"], 1)])[names["topic"]].result(10)
        produce(bootstrap, names["topic"], [json.dumps(r).encode() for r in clean_rows(1_500, seed=20 + i)])
        (dags / "pipelines" / f"{names['pipeline']}.yaml").write_text(kafka_pipeline_spec(**names, train=TRAIN))
        pipelines.append(names)
    env = stack.environment()
    db = fresh_database(stack)
    assert db.startswith("postgresql")
    extra = {"AIRFLOW__CELERY__BROKER_URL": redis, "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db,
             "AIRFLOW__CORE__PARALLELISM": "4", "MLOPS_OPS_GX_ROOT": str(ROOT / "great_expectations"),
             "AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": CELERY_CONFIG_OPTIONS}  # fmt: skip
    services = AirflowServices(root / "airflow", dags, env, extra_env=extra, python_path=[ROOT], database_url=db,
                               migrate=False, executor="CeleryExecutor", celery_workers=2)  # fmt: skip
    services.start()
    try:
        yield {"services": services, "pipelines": pipelines, "root": root,
               "mlflow": env["MLFLOW_TRACKING_URI"]}  # fmt: skip
    finally:
        services.stop()


def test_two_pipelines_on_two_celery_workers(celery: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    services: AirflowServices = celery["services"]
    for names in celery["pipelines"]:
        for suffix in ("__ingest", "__training"):
            dag_id = names["pipeline"] + suffix
            services.wait_for(f"{dag_id} parsed",
                              lambda d=dag_id: services.request("GET", f"/api/v2/dags/{d}")[0] == 200)  # fmt: skip
        ingest = f"/api/v2/dags/{names['pipeline']}__ingest/dagRuns"
        status, body = services.request("POST", ingest, {"logical_date": None})
        assert status == 200, body

    def trained() -> list[dict[str, Any]] | None:
        done = []
        for names in celery["pipelines"]:
            runs = [r for r in services.runs(names["pipeline"] + "__training") if r["state"] in ("success", "failed")]
            if not runs:
                return None
            done.append(runs[0])
        return done

    runs = services.wait_for("both training runs", trained, timeout=900, every=3)
    client = MlflowClient(celery["mlflow"], celery["mlflow"])
    for names, run in zip(celery["pipelines"], runs, strict=True):
        states = services.task_states(names["pipeline"] + "__training", run["dag_run_id"])
        assert run["state"] == "success", (states, services.logs())
        assert run["run_type"] == "asset_triggered"
        assert states == {"preprocess": "success", "train": "success", "evaluate": "success", "promote": "success"}
        assert client.get_model_version_by_alias(names["model"], "champion").version == "1"
    # the tasks were shared out: each worker ran some (its log names what it received)
    logs = {name: (celery["root"] / "airflow" / f"{name}.log").read_text(errors="replace")
            for name in ("celery-worker1", "celery-worker2")}  # fmt: skip
    received = {name: text.count("execute_workload") + text.count("Received task") for name, text in logs.items()}
    assert all(n > 0 for n in received.values()), received
    n = len(DEFAULT_MODULES)  # each worker imported the engines once, before its pool forked
    assert all(f"mlops-ops: preloaded {n} of {n} modules" in text for text in logs.values())
    db = services.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert db.startswith("postgresql") and Path(celery["root"]).exists()
