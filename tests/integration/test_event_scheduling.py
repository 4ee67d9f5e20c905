"""Runs started by events, with Airflow's real scheduler, dag-processor, triggerer and API server.

One factory-built pipeline (watched Kafka and S3 sources, Spark features, sklearn, evaluation,
promotion, drift stage, control topic) is served by real Airflow processes. The test checks: new
messages on the topic and new objects under the prefix start ingest runs with nobody triggering them
(AssetWatchers in the triggerer); each published batch's Asset event starts a training run; a REST
trigger with bad ``conf`` is refused (HTTP 400) and with good ``conf`` runs to the end; a drift Asset
event creates a retraining run; a Kafka control message creates a run through its ``AssetWatcher``
while messages for other pipelines or malformed ones do not; the "Lake snapshot" link serves the
snapshot; and every stage's figures reach a real UDP StatsD listener.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from mlops_ops.testing.airflow_services import AirflowServices
from mlops_ops.testing.runner import LOADER
from tests.conftest import ROOT
from tests.integration.churn_data import SCHEMA, clean_rows
from tests.integration.conftest import fresh_sqlite

SPEC = """
pipeline: {pipeline}
schedule: null
lake: {lake}
source:
  kafka:
    topics: [{topic}]
    schema: {schema}
    poll_timeout_s: 2
    watch: true
    poll_interval_s: 5
  s3: {{bucket: {bucket}, prefix: drops/, glob: '*.csv', format: csv, schema: {schema}, poll_interval_s: 5}}
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
retrain:
  control_topic: {control}
  control_conn_id: kafka_control
"""


class StatsdListener:
    """A UDP socket that keeps every StatsD line it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines += data.decode(errors="replace").splitlines()

    def values(self, name: str) -> list[str]:
        return [line.split(":", 1)[1] for line in list(self.lines) if line.split(":", 1)[0] == name]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture(scope="module")
def scenario(stack, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient, NewTopic

    root = tmp_path_factory.mktemp("sched")
    names = {"pipeline": f"sched_{uuid.uuid4().hex[:6]}", "topic": f"events-{uuid.uuid4().hex[:6]}",
             "control": f"control-{uuid.uuid4().hex[:6]}", "model": f"sched-{uuid.uuid4().hex[:6]}",
             "lake": str(root / "lake"), "bucket": f"sched-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    from mlops_ops.stack.services import s3_client

    s3_client(stack.settings).create_bucket(Bucket=names["bucket"])
    bootstrap = f"127.0.0.1:{stack.settings.ports['kafka']}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name in (names["topic"], names["control"]):
        admin.create_topics([NewTopic(name, num_partitions=1)])[name].result(10)
    dags = root / "dags"
    (dags / "pipelines").mkdir(parents=True)
    (dags / "pipelines" / f"{names['pipeline']}.yaml").write_text(SPEC.format(schema=json.dumps(SCHEMA), **names))
    (dags / "pipelines.py").write_text(LOADER)
    statsd = StatsdListener()
    services = AirflowServices(root / "airflow", dags, stack.environment(), python_path=[ROOT],
                               database_url=fresh_sqlite(stack, root / "airflow"), migrate=False, extra_env={
        "AIRFLOW__METRICS__STATSD_ON": "True", "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port), "AIRFLOW__METRICS__STATSD_PREFIX": "airflow"})  # fmt: skip
    services.start()
    try:
        yield {
            **names,
            "services": services,
            "statsd": statsd,
            "bootstrap": bootstrap,
            "mlflow_port": stack.settings.ports["mlflow"],
            "s3": s3_client(stack.settings),
        }
    finally:
        services.stop()
        statsd.close()


def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        producer.produce(topic, value)
    assert producer.flush(30) == 0


def _wait_finished(services: AirflowServices, dag_id: str, run_id: str, timeout: float = 420) -> dict[str, str]:
    def finished() -> dict[str, Any] | None:
        run = next((r for r in services.runs(dag_id) if r["dag_run_id"] == run_id), None)
        return run if run and run["state"] in ("success", "failed") else None

    run = services.wait_for(f"run {run_id} of {dag_id} to finish", finished, timeout=timeout, every=2)
    states = services.task_states(dag_id, run_id)
    assert run["state"] == "success", (states, services.logs())
    return states


def _new_run(services: AirflowServices, dag_id: str, known: set[str], timeout: float = 120) -> dict[str, Any]:
    return services.wait_for(
        f"a new run of {dag_id}",
        lambda: next((r for r in services.runs(dag_id) if r["dag_run_id"] not in known), None),
        timeout=timeout,
    )


def test_source_events_start_ingest_and_published_batches_start_training(scenario) -> None:  # type: ignore[no-untyped-def]
    from tests.integration.churn_data import to_csv

    services: AirflowServices = scenario["services"]
    ingest_id, training_id = f"{scenario['pipeline']}__ingest", f"{scenario['pipeline']}__training"
    for dag_id in (ingest_id, training_id):
        services.wait_for(
            f"{dag_id} to be parsed", lambda d=dag_id: services.request("GET", f"/api/v2/dags/{d}")[0] == 200
        )

    status, body = services.request("POST", f"/api/v2/dags/{training_id}/dagRuns",
                                    {"logical_date": None, "conf": {"train_params": "fast please"}})  # fmt: skip
    assert status == 400, body
    assert "train_params" in json.dumps(body) and "object" in json.dumps(body)
    assert services.runs(training_id) == []

    # messages on the topic: nobody triggers anything, the Kafka watcher starts the ingest run
    log = services.home / "triggerer.log"
    services.wait_for("the source watchers", lambda: "watching kafka for new data" in log.read_text(errors="replace"),
                      timeout=120)  # fmt: skip
    rows = clean_rows(3_000, seed=21)
    _produce(scenario["bootstrap"], scenario["topic"], [json.dumps(r).encode() for r in rows])
    run = _new_run(services, ingest_id, set(), timeout=180)
    assert run["run_type"] == "asset_triggered"
    states = _wait_finished(services, ingest_id, run["dag_run_id"])
    assert states["ingest_kafka"] == "success"
    known_ingest = {r["dag_run_id"] for r in services.runs(ingest_id)}

    # the published batch's Asset event starts the training run
    training = _new_run(services, training_id, set(), timeout=180)
    assert training["run_type"] == "asset_triggered"
    assert _wait_finished(services, training_id, training["dag_run_id"]) == {
        "preprocess": "success", "train": "success", "evaluate": "success", "promote": "success"}  # fmt: skip

    statsd: StatsdListener = scenario["statsd"]
    prefix = f"airflow.mlops_ops.{scenario['pipeline']}"
    services.wait_for("metrics", lambda: statsd.values(f"{prefix}.promote.champion_changes"), timeout=30)
    assert statsd.values(f"{prefix}.ingest_kafka.rows") == ["3000|c"]
    assert statsd.values(f"{prefix}.ingest_kafka.dead_lettered") == ["0|c"]
    assert statsd.values(f"{prefix}.evaluate.blessed") == ["1|c"]
    (auc,) = statsd.values(f"{prefix}.evaluate.challenger.roc_auc")
    assert auc.endswith("|g") and 0.5 < float(auc.split("|")[0]) <= 1.0
    assert statsd.values(f"{prefix}.promote.champion_version") == ["1.0|g"]

    # operator extra links (computed when each task ended) and the plugin's pages, through the API server
    ingest_path = f"/api/v2/dags/{ingest_id}/dagRuns/{quote(run['dag_run_id'], safe='')}/taskInstances"
    snapshot_url = services.request("GET", f"{ingest_path}/ingest_kafka/links")[1]["extra_links"]["Lake snapshot"]
    assert snapshot_url.startswith(f"/mlops-ops/lake/{scenario['pipeline']}/raw/")
    status, snapshot = services.request("GET", snapshot_url)
    assert status == 200 and snapshot["summary"]["mlops.rows"] == "3000" and "main" in snapshot["refs"]
    assert sum(f["rows"] for f in snapshot["added_files"]) == 3_000
    assert services.request("GET", f"/mlops-ops/lake/{scenario['pipeline']}/raw/123")[0] == 404
    assert services.request("GET", f"/mlops-ops/lake/{scenario['pipeline']}/raw/..%2Fx")[0] == 404
    train_path = f"/api/v2/dags/{training_id}/dagRuns/{quote(training['dag_run_id'], safe='')}/taskInstances"
    links = services.request("GET", f"{train_path}/train/links")[1]["extra_links"]
    mlflow_ui = f"http://127.0.0.1:{scenario['mlflow_port']}"
    assert links["Model version"] == f"{mlflow_ui}/#/models/{scenario['model']}/versions/1"
    assert links["MLflow run"].startswith(f"{mlflow_ui}/#/runs/")
    status, overview = services.request("GET", "/mlops-ops/api/pipelines")
    assert status == 200, overview
    (row,) = [r for r in overview if r["pipeline"] == scenario["pipeline"]]
    assert (row["model_name"], row["champion_version"], row["key_metric"]) == (scenario["model"], "1", "roc_auc")
    assert row["last_run"]["state"] == "success" and row["errors"] == []
    assert abs(row["champion_metric"] - float(auc.split("|")[0])) < 1e-6
    assert [p["label"] for p in row["champion_history"]] == ["v1"]

    # a good manual trigger with conf runs to the end (on the same raw snapshot)
    status, body = services.request("POST", f"/api/v2/dags/{training_id}/dagRuns", {
        "logical_date": None, "conf": {"train_params": {"max_iter": 20}, "reason": "manual"}})  # fmt: skip
    assert status == 200, body
    assert body["conf"]["train_params"] == {"max_iter": 20}
    assert _wait_finished(services, training_id, body["dag_run_id"])["train"] == "success"

    # objects under the prefix: the S3 watcher starts an ingest run
    scenario["s3"].put_object(Bucket=scenario["bucket"], Key="drops/export-1.csv",
                              Body=to_csv(clean_rows(200, seed=22, start=50_000)))  # fmt: skip
    run = _new_run(services, ingest_id, known_ingest, timeout=180)
    assert run["run_type"] == "asset_triggered"
    states = _wait_finished(services, ingest_id, run["dag_run_id"])
    assert states["ingest_s3"] == "success"
    assert statsd.values(f"{prefix}.ingest_s3.rows") == ["200|c"]


def test_drift_event_and_control_message_start_retraining_runs(scenario) -> None:  # type: ignore[no-untyped-def]
    services: AirflowServices = scenario["services"]
    pipeline = scenario["pipeline"]
    dag_id = f"{pipeline}__training"
    services.wait_for(f"{dag_id} to be parsed", lambda: services.request("GET", f"/api/v2/dags/{dag_id}")[0] == 200)
    settled = lambda: all(r["state"] in ("success", "failed") for r in services.runs(dag_id))  # noqa: E731
    services.wait_for("no training run in flight", settled, timeout=300)
    known = {r["dag_run_id"] for r in services.runs(dag_id)}

    # a drift signal (what drift_signal emits) creates an asset-triggered retraining run
    _, assets = services.request("GET", f"/api/v2/assets?name_pattern=mlops_ops.{pipeline}.drift")
    (drift_asset,) = [a for a in assets["assets"] if a["name"] == f"mlops_ops.{pipeline}.drift"]
    status, body = services.request("POST", "/api/v2/assets/events", {
        "asset_id": drift_asset["id"], "extra": {"drifted_columns": {"monthly_charges": 0.4}}})  # fmt: skip
    assert status == 200, body
    run = _new_run(services, dag_id, known)
    assert run["run_type"] == "asset_triggered"
    states = _wait_finished(services, dag_id, run["dag_run_id"])
    # the training DAG never ingests: the retraining run builds from what raw holds and trains
    assert "ingest_kafka" not in states and states["preprocess"] == states["train"] == "success"
    known.add(run["dag_run_id"])

    # control topic: a malformed message and one for another pipeline are ignored; the right one starts a run
    services.wait_for("the control-topic watcher to start",
                      lambda: "starting" in (services.home / "triggerer.log").read_text(errors="replace"),
                      timeout=120)  # fmt: skip
    # the watcher's consumer joins its group and reads the topic's live end: probes (requests for another pipeline,
    # passed over) until the triggerer logs one
    probe = json.dumps({"pipeline": "join_probe", "reason": "probe"}).encode()

    def probe_read() -> bool:
        _produce(scenario["bootstrap"], scenario["control"], [probe])
        return "join_probe" in (services.home / "triggerer.log").read_text(errors="replace")

    services.wait_for("the control-topic watcher to read the topic", probe_read, timeout=180)
    sent = time.monotonic()
    _produce(scenario["bootstrap"], scenario["control"], [
        b"not json at all", json.dumps({"pipeline": "someone_else", "reason": "x"}).encode(),
        json.dumps({"pipeline": pipeline, "reason": "new labels arrived"}).encode(),
        json.dumps({"pipeline": pipeline, "reason": "and again"}).encode()])  # fmt: skip  # within the cool-down
    run = _new_run(services, dag_id, known, timeout=180)
    latency = time.monotonic() - sent
    assert run["run_type"] == "asset_triggered"
    _wait_finished(services, dag_id, run["dag_run_id"])
    known.add(run["dag_run_id"])
    _, events = services.request("GET", "/api/v2/assets/events?source_dag_id=&limit=100&order_by=-timestamp")
    payloads = [e.get("extra", {}).get("payload", {}) for e in events["asset_events"]]
    requests = [p for p in payloads if p.get("pipeline") == pipeline and "source" not in p]  # not the source watchers
    assert [p["reason"] for p in requests] == ["new labels arrived"]
    log = (services.home / "triggerer.log").read_text(errors="replace")
    assert "ignored control message" in log and "someone_else" in log
    assert "passed over: the control cool-down (3600 s)" in log  # N18: one run per hour at most
    # the ignored messages must not have started anything: the scheduler has acted on every event queued for the DAG
    services.wait_for("the scheduler to act on every event", lambda: services.asset_events_handled(dag_id))
    assert {r["dag_run_id"] for r in services.runs(dag_id)} == known
    print(f"control message -> run created: {latency:.1f}s")
