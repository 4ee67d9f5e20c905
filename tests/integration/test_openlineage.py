"""OpenLineage end to end: Airflow's OpenLineage provider, configured with an HTTP transport to a local receiver,
emits the events of a whole pipeline run by the real scheduler (PostgreSQL metadata DB): Kafka and S3 ingest, the
quality gate, Spark preprocessing, training, evaluation and promotion. Every event is checked against the spec as
openlineage-python ships it; the datasets carry the Kafka offsets, S3 ETags, Iceberg snapshot ids, GX assertions,
the MLflow run and the model version. ``mlops-ops lineage MODEL@VERSION`` prints the same chain from the records.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mlops_ops.stack.services import s3_client
from mlops_ops.testing.airflow_services import AirflowServices
from tests.integration.churn_data import SCHEMA, clean_rows, pipeline_services, to_csv
from tests.integration.lake_helpers import produce
from tests.integration.openlineage_receiver import Receiver, validate

SPEC = """
pipeline: {pipeline}
schedule: null
source:
  kafka:
    topics: [{topic}]
    schema: {schema}
    poll_timeout_s: 2
  s3:
    bucket: {bucket}
    prefix: in/
    format: csv
    schema: {schema}
    watch: false
quality:
  suite: churn_raw
preprocess:
  transform: tests.integration.feature_transforms:churn_features
  key_column: customer_id
train:
  task: binary
  target: churned
  trainer: sklearn
  params: {{max_iter: 30}}
evaluate:
  metrics: [roc_auc, accuracy]
  beat_baseline: false
promote:
  model_name: {model}
"""


@pytest.fixture(scope="module")
def traced(postgres_stack, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient, NewTopic

    stack = postgres_stack
    suffix = uuid.uuid4().hex[:6]
    names = {"pipeline": f"ol_{suffix}", "topic": f"ol-{suffix}", "model": f"ol-{suffix}", "bucket": f"ol-{suffix}"}
    bootstrap = f"127.0.0.1:{stack.settings.ports['kafka']}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(names["topic"], 1)])[names["topic"]].result(10)
    produce(bootstrap, names["topic"], [json.dumps(r).encode() for r in clean_rows(1_200, seed=61)])
    s3 = s3_client(stack.settings)
    s3.create_bucket(Bucket=names["bucket"])
    for i in range(2):
        body = to_csv(clean_rows(400, seed=70 + i, start=500_000 + 1_000 * i))
        s3.put_object(Bucket=names["bucket"], Key=f"in/part-{i}.csv", Body=body)
    spec = SPEC.format(schema=json.dumps(SCHEMA), **names)
    receiver = Receiver()
    services = pipeline_services(stack, tmp_path_factory.mktemp("openlineage"), names["pipeline"], spec)
    services.env.update({"AIRFLOW__OPENLINEAGE__TRANSPORT": receiver.transport(),
                         "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlops-ops-test"})  # fmt: skip
    services.start()
    try:
        yield {**names, "services": services, "receiver": receiver, "s3": s3, "bootstrap": bootstrap,
               "env": stack.environment()}  # fmt: skip
    finally:
        services.stop()
        receiver.stop()


def _complete(events: list[dict[str, Any]], task: str) -> dict[str, Any]:
    done = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(f".{task}")]
    assert len(done) == 1, (task, [(e["eventType"], e["job"]["name"]) for e in events])
    return done[0]


def _facet(dataset: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(dataset["facets"][name])


@pytest.mark.timeout(1200)
def test_every_stage_emits_valid_lineage_from_offsets_to_the_model_version(traced: dict[str, Any]) -> None:
    services: AirflowServices = traced["services"]
    ingest, training = f"{traced['pipeline']}__ingest", f"{traced['pipeline']}__training"
    for dag_id in (ingest, training):
        services.wait_for(f"{dag_id} parsed", lambda d=dag_id: services.request("GET", f"/api/v2/dags/{d}")[0] == 200)
    status, run = services.request("POST", f"/api/v2/dags/{ingest}/dagRuns", {"logical_date": None})
    assert status == 200, run

    def trained() -> dict[str, Any] | None:
        runs = [r for r in services.runs(training) if r["state"] in ("success", "failed")]
        return runs[0] if runs else None

    done = services.wait_for("the training run", trained, timeout=900, every=3)
    assert done["state"] == "success", services.task_states(training, done["dag_run_id"])
    receiver: Receiver = traced["receiver"]
    tasks = ("ingest_kafka", "ingest_s3", "quality_gate", "preprocess", "train", "evaluate", "promote")
    services.wait_for("every task's COMPLETE event", lambda: all(
        any(e["eventType"] == "COMPLETE" and e["job"]["name"].endswith(f".{t}") for e in receiver.events)
        for t in tasks), timeout=120)  # fmt: skip
    events = list(receiver.events)
    for event in events:  # every event, START and COMPLETE of every task and of both DAG runs
        validate(event)
    assert {e["eventType"] for e in events} >= {"START", "COMPLETE"}

    # Kafka: the topic with the batch's offsets -> raw at the staged snapshot
    kafka = _complete(events, "ingest_kafka")
    (topic,) = kafka["inputs"]
    assert (topic["namespace"], topic["name"]) == (f"kafka://{traced['bootstrap']}", traced["topic"])
    offsets = _facet(topic, "mlopsOps_kafkaOffsets")["partitions"]
    assert offsets == [{"partition": 0, "startOffset": 0, "endOffset": 1_200}]
    (staged_kafka,) = kafka["outputs"]
    assert staged_kafka["name"] == f"{traced['pipeline']}.raw" and staged_kafka["namespace"].startswith("iceberg://")
    kafka_snapshot = _facet(staged_kafka, "mlopsOps_icebergSnapshot")
    assert kafka_snapshot["branch"] == "audit_kafka"
    assert _facet(staged_kafka, "version")["datasetVersion"] == str(kafka_snapshot["snapshotId"])

    # S3: each object with its ETag (as S3 reports it)
    s3_event = _complete(events, "ingest_s3")
    etags = {i["name"]: _facet(i, "mlopsOps_s3Object")["eTag"] for i in s3_event["inputs"]}
    assert set(etags) == {"in/part-0.csv", "in/part-1.csv"}
    for key, etag in etags.items():
        assert traced["s3"].head_object(Bucket=traced["bucket"], Key=key)["ETag"].strip('"') == etag.strip('"')
    assert {i["namespace"] for i in s3_event["inputs"]} == {f"s3://{traced['bucket']}"}

    # the gate: each audited batch with GX's assertions and Data Docs -> raw's published head
    gate = _complete(events, "quality_gate")
    assert {_facet(i, "mlopsOps_icebergSnapshot")["snapshotId"] for i in gate["inputs"]} >= {
        kafka_snapshot["snapshotId"]}  # fmt: skip
    for audited in gate["inputs"]:
        assertions = audited["inputFacets"]["dataQualityAssertions"]["assertions"]
        assert len(assertions) == 14  # every expectation of churn_raw, passed or not
        assert all(isinstance(a["success"], bool) for a in assertions)
        assert {"expect_column_values_to_not_be_null"} & {a["assertion"] for a in assertions}
        assert _facet(audited, "mlopsOps_dataDocs")["suite"] == "churn_raw"
    (published,) = gate["outputs"]
    raw_head = int(_facet(published, "version")["datasetVersion"])

    # preprocess: raw@head -> features@snapshot; train: features@snapshot -> models/<name>/1 with the MLflow run
    pre = _complete(events, "preprocess")
    assert [int(_facet(i, "version")["datasetVersion"]) for i in pre["inputs"]] == [raw_head]
    (features,) = pre["outputs"]
    features_ref = f"{features['name']}@{_facet(features, 'version')['datasetVersion']}"
    train = _complete(events, "train")
    assert [f"{i['name']}@{_facet(i, 'version')['datasetVersion']}" for i in train["inputs"]] == [features_ref]
    (version,) = train["outputs"]
    assert version["name"] == f"models/{traced['model']}/1"
    model_facet = _facet(version, "mlopsOps_modelVersion")
    run_id = train["run"]["facets"]["mlopsOps_mlflowRun"]["runId"]
    assert model_facet["runId"] == run_id and model_facet["featuresSnapshot"] == features_ref
    promote = _complete(events, "promote")
    assert [o["name"] for o in promote["outputs"]] == [f"models/{traced['model']}/1"]

    # the chain from the records: `mlops-ops lineage MODEL@VERSION`
    out = subprocess.run([sys.executable, "-m", "mlops_ops.cli.main", "lineage", f"{traced['model']}@1", "--json"],
                         capture_output=True, text=True, env={**traced["env"], **_path_env()}, timeout=120,
                         check=True)  # fmt: skip
    chain = json.loads(out.stdout)
    assert chain["run_id"] == run_id and chain["features"] == features_ref and chain["raw_snapshot"] == raw_head
    assert "champion" in chain["aliases"]
    by_source = {b["source"]: b for b in chain["batches"]}
    assert by_source["kafka"]["kafka_offsets"] == {f"{traced['topic']}/0": [0, 1_200]}
    assert by_source["kafka"]["gate"]["passed"] and by_source["kafka"]["gate"]["suite"] == "churn_raw"
    assert {o["etag"].strip('"') for o in by_source["s3"]["s3_objects"]} == {e.strip('"') for e in etags.values()}
    text = subprocess.run([sys.executable, "-m", "mlops_ops.cli.main", "lineage", f"{traced['model']}@1"],
                          capture_output=True, text=True, env={**traced["env"], **_path_env()}, timeout=120,
                          check=True).stdout  # fmt: skip
    assert f"kafka {traced['topic']}/0 offsets 0..1199" in text and f"built from raw snapshot {raw_head}" in text
    assert f"training run: MLflow run {run_id}" in text and f"features: {features_ref}" in text


def _path_env() -> dict[str, str]:
    import os

    from tests.conftest import ROOT

    return {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
