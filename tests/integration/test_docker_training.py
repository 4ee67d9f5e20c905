"""Training in a container on a real Docker engine, driven by Airflow's real scheduler (LocalExecutor).

A spec-built pipeline with ``train.executor: docker``: ingest (Kafka) -> gate -> the training DAG, started by the raw
Asset event -> preprocess (Spark, in the worker) -> train in the trainer image (built here from a debootstrap base;
no Airflow inside) -> evaluate -> promote. The container reads the features from the lake, logs to MLflow and
registers the challenger. Then a training task killed mid-fit: its container is stopped and removed, nothing is
registered, its MLflow run is marked FAILED, and the retry registers exactly one version. Credentials (the MLflow
connection is stored in the metadata database) never show in the container's configuration (``docker inspect``), the
XComs, rendered fields or run confs in the metadata database, or the logs of the first run, the killed try and its
retry.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from mlops_ops.testing.airflow_services import AirflowServices
from mlops_ops.testing.runner import LOADER
from tests.conftest import ROOT
from tests.integration.churn_data import clean_rows, kafka_pipeline_spec
from tests.integration.conftest import fresh_sqlite
from tests.integration.lake_helpers import produce
from tests.integration.secret_scan import found, metadata_texts

SENTINEL = "SENTINEL-docker-mlflow-4c1e77"
TRAIN = """  executor: docker
  trainer: torch_mlp
  params: {{epochs: 4, hidden: [16]}}
  resources: {{cpu: 1, memory: 2Gi}}
  docker: {{network_mode: host, mounts: ["{catalog}:{catalog}"]}}"""


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True, timeout=60).stdout


def trainer_containers(pipeline: str) -> list[str]:
    """Every container (running or not) of this pipeline's training tasks."""
    return docker("ps", "-aq", "--filter", f"label=mlops-ops/pipeline={pipeline}").split()


@pytest.fixture(scope="module")
def pipeline(stack, trainer_image: str, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient, NewTopic

    root = tmp_path_factory.mktemp("docker-training")
    names = {"pipeline": f"dock_{uuid.uuid4().hex[:6]}", "topic": f"dock-{uuid.uuid4().hex[:6]}",
             "model": f"dock-{uuid.uuid4().hex[:6]}"}  # fmt: skip
    ports = stack.settings.ports
    bootstrap = f"127.0.0.1:{ports['kafka']}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(names["topic"], 1)])[names["topic"]].result(10)
    produce(bootstrap, names["topic"], [json.dumps(r).encode() for r in clean_rows(3_000, seed=11)])
    catalog = stack.environment()["PYICEBERG_CATALOG__MLOPS__URI"].removeprefix("sqlite:///").rsplit("/", 1)[0]
    dags = root / "dags"
    (dags / "pipelines").mkdir(parents=True)
    train = TRAIN.format(catalog=catalog)
    (dags / "pipelines" / f"{names['pipeline']}.yaml").write_text(kafka_pipeline_spec(**names, train=train))
    (dags / "pipelines_dag.py").write_text(LOADER)
    mlflow = {"conn_type": "mlflow", "host": "127.0.0.1", "port": ports["mlflow"], "schema": "http",
              "login": "mlops", "password": SENTINEL}  # fmt: skip
    env = {"MLOPS_OPS_GX_ROOT": str(ROOT / "great_expectations")}
    services = AirflowServices(root / "airflow", dags, stack.environment(), extra_env=env, python_path=[ROOT],
                               database_url=fresh_sqlite(stack, root / "airflow"), migrate=False,
                               connections={"mlflow_default": mlflow})  # fmt: skip
    services.start()
    try:
        yield {**names, "services": services, "mlflow": f"http://127.0.0.1:{ports['mlflow']}",
               "secrets": {"mlflow": SENTINEL, "s3": stack.settings.s3_secret_key}}  # fmt: skip
    finally:
        services.stop()


def _run_done(services: AirflowServices, dag_id: str, run_id: str | None = None) -> dict[str, Any] | None:
    for run in services.runs(dag_id):
        if (run_id is None or run["dag_run_id"] == run_id) and run["state"] in ("success", "failed"):
            return run
    return None


def _ti_path(dag_id: str, run_id: str, task_id: str = "train") -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"


def _task_log(services: AirflowServices, dag_id: str, run_id: str, try_number: int) -> str:
    _, body = services.request("GET", f"{_ti_path(dag_id, run_id)}/logs/{try_number}?full_content=true")
    return json.dumps(body)


@pytest.mark.timeout(1800)  # with the fixtures: the base and trainer images are built first on a fresh machine
def test_pipeline_trains_in_a_container_under_the_scheduler(pipeline: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    services: AirflowServices = pipeline["services"]
    ingest, training = f"{pipeline['pipeline']}__ingest", f"{pipeline['pipeline']}__training"
    for dag_id in (ingest, training):
        services.wait_for(f"{dag_id} parsed", lambda d=dag_id: services.request("GET", f"/api/v2/dags/{d}")[0] == 200)
    status, run = services.request("POST", f"/api/v2/dags/{ingest}/dagRuns", {"logical_date": None})
    assert status == 200, run
    done = services.wait_for("the training run the raw Asset event starts", lambda: _run_done(services, training),
                             timeout=600, every=2)  # fmt: skip
    assert done["run_type"] == "asset_triggered"
    states = services.task_states(training, done["dag_run_id"])
    assert states == {"preprocess": "success", "train": "success", "evaluate": "success", "promote": "success"}, (
        states, _task_log(services, training, done["dag_run_id"], 1)[-3000:])  # fmt: skip
    _, ti = services.request("GET", _ti_path(training, done["dag_run_id"]))
    assert ti["operator"] == "TrainModelDockerOperator"

    client = MlflowClient(pipeline["mlflow"], pipeline["mlflow"])
    (version,) = client.search_model_versions(f"name = '{pipeline['model']}'")
    champion = client.get_model_version_by_alias(pipeline["model"], "champion")
    assert champion.version == version.version and version.tags["airflow.run_id"] == done["dag_run_id"]
    trained = client.get_run(version.run_id)
    assert trained.data.params.get("hp.epochs") == "4" and "best_val_loss" in trained.data.metrics
    assert trained.data.tags["mlops_ops.features_snapshot"].startswith(f"{pipeline['pipeline']}.features@")
    assert trainer_containers(pipeline["pipeline"]) == []  # removed after success

    # credentials: not in the rendered fields, nor in the task log (they went to the container as a mounted file)
    log = _task_log(services, training, done["dag_run_id"], 1)
    assert "credentials from MLOPS_OPS_SECRETS_FILE" in log and "registered" in log
    texts = {"rendered fields": json.dumps(ti.get("rendered_fields")), "log": log}
    assert found(texts, pipeline["secrets"]) == []


def test_killed_training_stops_its_container_and_a_retry_trains_once(pipeline: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    services: AirflowServices = pipeline["services"]
    training = f"{pipeline['pipeline']}__training"
    client = MlflowClient(pipeline["mlflow"], pipeline["mlflow"])
    before = len(client.search_model_versions(f"name = '{pipeline['model']}'"))
    assert before >= 1  # the test above trained once
    # enough epochs (no early stop) that the kill lands mid-fit (about 50 s of fitting here; the kill lands within
    # seconds of the run showing RUNNING); the retry trains with the same conf, so more would only slow it down
    conf = {"train_params": {"epochs": 400, "patience": 100000}, "reason": "kill test"}
    status, run = services.request("POST", f"/api/v2/dags/{training}/dagRuns", {"logical_date": None, "conf": conf})
    assert status == 200, run
    run_id = run["dag_run_id"]
    experiment = client.get_experiment_by_name(pipeline["model"])
    query = f"tags.`airflow.run_id` = '{run_id}'"

    def fitting() -> list[str]:
        running = docker("ps", "-q", "--filter", f"label=mlops-ops/pipeline={pipeline['pipeline']}").split()
        runs = client.search_runs(
            [experiment.experiment_id], filter_string=query + " and attributes.status = 'RUNNING'"
        )
        return running if running and runs else []

    (container,) = services.wait_for("the trainer container to be fitting", fitting, timeout=600, every=0.5)
    # the running container's configuration (what `docker inspect` shows once it has finished) holds no credential
    inspect = docker("inspect", container)
    assert found({"docker inspect": inspect}, pipeline["secrets"]) == []
    (config,) = json.loads(inspect)
    assert "MLOPS_OPS_SECRETS_FILE=/run/mlops-ops/secrets.json" in config["Config"]["Env"]
    assert any(m["Destination"] == "/run/mlops-ops" and not m["RW"] for m in config["Mounts"])

    status, body = services.request("PATCH", _ti_path(training, run_id), {"new_state": "failed"})
    assert status == 200, body
    services.wait_for("the container to be stopped and removed", lambda: trainer_containers(pipeline["pipeline"]) == [],
                      timeout=120, every=0.5)  # fmt: skip
    time.sleep(2)
    assert len(client.search_model_versions(f"name = '{pipeline['model']}'")) == before  # nothing registered
    killed = client.search_runs([experiment.experiment_id], filter_string=query)
    assert killed and all(r.info.status == "FAILED" for r in killed), [r.info.status for r in killed]

    # a retry (the task cleared with its downstream) trains once
    status, body = services.request("POST", f"/api/v2/dags/{training}/clearTaskInstances",
                                    {"dry_run": False, "task_ids": ["train"], "dag_run_id": run_id,
                                     "include_downstream": True, "only_failed": False})  # fmt: skip
    assert status == 200, body
    done = services.wait_for("the retried run", lambda: _run_done(services, training, run_id), timeout=900, every=2)
    assert done["state"] == "success", services.task_states(training, run_id)
    mine = client.search_model_versions(f"name = '{pipeline['model']}' and tags.`airflow.run_id` = '{run_id}'")
    assert len(mine) == 1 and len(client.search_model_versions(f"name = '{pipeline['model']}'")) == before + 1
    assert trainer_containers(pipeline["pipeline"]) == []

    # what the runs left where users read: the metadata database (the train task's XCom holds its MLflow run id,
    # so the scan reads real values) and the logs of the killed try and of its retry
    texts = metadata_texts(services.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    assert mine[0].run_id in texts["xcom"] and "train_params" in texts["run conf"]
    logs = {f"log of try {n}": _task_log(services, training, run_id, n) for n in (1, 2)}
    assert "credentials from MLOPS_OPS_SECRETS_FILE" in logs["log of try 1"] and "registered" in logs["log of try 2"]
    assert found({**texts, **logs}, pipeline["secrets"]) == []
    assert found({"control": f"x{SENTINEL}x"}, pipeline["secrets"]) == ["mlflow in control"]  # the scan finds one
