"""Control-message latency: a Kafka message on the control topic -> the retraining DAG run queued.

Real ``airflow scheduler``, ``dag-processor``, ``triggerer`` and ``api-server`` processes
(``mlops_ops.testing.airflow_services``, the ones the event-scheduling test uses) serve three DAGs,
each scheduled on an Asset with an ``AssetWatcher`` on its own topic and connection (consumer group):

* *library*: a factory-built pipeline with ``retrain.control_topic`` (``ControlTopicTrigger``);
* *raw_shared_stream*: hand-written, the Kafka provider's ``KafkaSharedStreamTrigger`` (what the
  library builds on, without its request parsing);
* *raw_message_queue*: hand-written, the provider's ``MessageQueueTrigger`` (scheme ``kafka``).

Each sample produces one message (flushed) and takes the run's ``queued_at`` (set by the
scheduler when it creates the run) minus the time just before producing. The run is then
marked failed through the REST API so the next one is not held back by ``max_active_runs=1``
(asset-triggered runs are not even created while a DAG is at its limit). The sides take turns
in rotating order. Median and p95 per side, ratios of the library's median to each raw side's,
and the triggerer's peak RSS (VmHWM). Results go to ``bench/results/control_latency.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = int(os.environ.get("BENCH_CONTROL_SAMPLES", "20"))

SPEC = """
pipeline: {pipeline}
schedule: null
lake: {lake}
source:
  kafka:
    topics: [{events}]
    schema: {{customer_id: string, churned: int}}
preprocess:
  transform: tests.integration.feature_transforms:churn_features
  key_column: customer_id
train:
  trainer: sklearn
  task: binary
  target: churned
evaluate:
  metrics: [roc_auc]
promote:
  model_name: {pipeline}
retrain:
  control_topic: {library_topic}
  control_conn_id: kafka_control_bench
"""
RAW_DAGS = """
# Airflow DAG file: the same watcher written by hand with the Kafka provider's two triggers
from airflow.providers.apache.kafka.triggers.shared_stream import KafkaSharedStreamTrigger
from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetWatcher

shared = KafkaSharedStreamTrigger(topics=["{shared_topic}"], kafka_config_id="kafka_control_shared", poll_timeout=1.0)
queue = MessageQueueTrigger(
    scheme="kafka", topics=["{queue_topic}"], kafka_config_id="kafka_control_queue",
    apply_function="bench.control_latency.message_json", poll_interval=1.0,
)
for dag_id, trigger in (("raw_shared_stream", shared), ("raw_message_queue", queue)):
    request = Asset(name=f"bench.{{dag_id}}", watchers=[AssetWatcher(name=f"{{dag_id}}_watcher", trigger=trigger)])
    with DAG(dag_id=dag_id, schedule=request, max_active_runs=1, catchup=False):
        EmptyOperator(task_id="noop")
"""


def message_json(message: Any) -> Any:
    """The raw message-queue trigger's apply function: the message's JSON body (the event payload)."""
    return json.loads(message.value())


def _connection(bootstrap: str, group: str) -> str:
    extra = {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
             "enable.auto.commit": "false"}  # fmt: skip
    return json.dumps({"conn_type": "kafka", "extra": extra})


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main() -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from mlops_ops.stack import EmbeddedStack
    from mlops_ops.testing.airflow_services import AirflowServices
    from mlops_ops.testing.runner import LOADER

    stack = EmbeddedStack(project=ROOT)
    bootstrap = f"127.0.0.1:{stack.settings.ports['kafka']}"
    tag = uuid.uuid4().hex[:6]
    names = {"pipeline": f"bench_ctl_{tag}", "events": f"bench-events-{tag}",
             "library_topic": f"bench-ctl-lib-{tag}", "shared_topic": f"bench-ctl-shared-{tag}",
             "queue_topic": f"bench-ctl-queue-{tag}"}  # fmt: skip
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for topic in (names["events"], names["library_topic"], names["shared_topic"], names["queue_topic"]):
        admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(10)

    with tempfile.TemporaryDirectory(prefix="bench-control-") as tmp:
        root = Path(tmp)
        dags = root / "dags"
        (dags / "pipelines").mkdir(parents=True)
        (dags / "pipelines" / f"{names['pipeline']}.yaml").write_text(SPEC.format(lake=root / "lake", **names))
        (dags / "pipelines.py").write_text(LOADER)
        (dags / "raw_control_dags.py").write_text(RAW_DAGS.format(**names))
        services = AirflowServices(root / "airflow", dags, stack.environment(), python_path=[ROOT], extra_env={
            "AIRFLOW_CONN_KAFKA_CONTROL_BENCH": _connection(bootstrap, f"bench-lib-{tag}"),
            "AIRFLOW_CONN_KAFKA_CONTROL_SHARED": _connection(bootstrap, f"bench-shared-{tag}"),
            "AIRFLOW_CONN_KAFKA_CONTROL_QUEUE": _connection(bootstrap, f"bench-queue-{tag}")})  # fmt: skip
        services.start()
        try:
            result = _measure(services, Producer({"bootstrap.servers": bootstrap}), names)
            result["triggerer_peak_rss_mb"] = _peak_rss_mb(services.processes["triggerer"].pid)
        finally:
            services.stop()
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "control_latency.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def _measure(services: Any, producer: Any, names: dict[str, str]) -> dict[str, Any]:
    sides = {"library": (f"{names['pipeline']}__training", names["library_topic"]),
             "raw_shared_stream": ("raw_shared_stream", names["shared_topic"]),
             "raw_message_queue": ("raw_message_queue", names["queue_topic"])}  # fmt: skip
    for dag_id, _ in sides.values():
        services.wait_for(f"{dag_id} parsed", lambda d=dag_id: services.request("GET", f"/api/v2/dags/{d}")[0] == 200,
                          timeout=180)  # fmt: skip
    log = services.home / "triggerer.log"
    services.wait_for("the watchers running", lambda: log.read_text(errors="replace").count("starting") >= len(sides),
                      timeout=180)  # fmt: skip
    message = json.dumps({"pipeline": names["pipeline"], "reason": "bench"}).encode()
    latencies: dict[str, list[float]] = {side: [] for side in sides}
    for i in range(SAMPLES + 1):  # sample 0 warms up (consumer group join, first fetch): not counted
        order = list(sides.items())[i % len(sides) :] + list(sides.items())[: i % len(sides)]
        for side, (dag_id, topic) in order:
            known = {r["dag_run_id"] for r in services.runs(dag_id)}
            sent = time.time()
            producer.produce(topic, message)
            assert producer.flush(10) == 0
            run = services.wait_for(f"a run of {dag_id}",
                                    lambda d=dag_id, k=known: next((r for r in services.runs(d)
                                                                     if r["dag_run_id"] not in k), None),
                                    timeout=120, every=0.1)  # fmt: skip
            if i:
                latencies[side].append(datetime.fromisoformat(run["queued_at"]).timestamp() - sent)
            _finish(services, dag_id, run["dag_run_id"])
    return {
        "samples": SAMPLES,
        **{f"{side}_median_s": round(statistics.median(v), 3) for side, v in latencies.items()},
        **{f"{side}_p95_s": round(_p95(v), 3) for side, v in latencies.items()},
        **{
            f"ratio_median_vs_{side}": round(statistics.median(latencies["library"]) / statistics.median(v), 3)
            for side, v in latencies.items()
            if side != "library"
        },
        "runs": {side: [round(x, 3) for x in v] for side, v in latencies.items()},
    }


def _finish(services: Any, dag_id: str, run_id: str) -> None:
    """Mark the run failed (its tasks are not what is measured) and wait until it no longer counts as active."""
    from urllib.parse import quote

    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
    for _ in range(10):  # SQLite is shared by four processes: a write can hit "database is locked"
        status, body = services.request("PATCH", path, {"state": "failed"})
        if status == 200 or services.request("GET", path)[1]["state"] == "failed":
            break
        time.sleep(0.5)
    else:
        raise RuntimeError(f"could not end {run_id}: {body}")
    services.wait_for(f"{run_id} to end", lambda: services.request("GET", path)[1]["state"] == "failed", every=0.2)


if __name__ == "__main__":
    main()
