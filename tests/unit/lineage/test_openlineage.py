from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mlops_ops.lineage import openlineage as ol
from mlops_ops.lineage.chain import Batch, Chain, parse_model_ref, render
from tests.integration.openlineage_receiver import validate


def _event(lineage: ol.Lineage) -> dict[str, Any]:
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.serde import Serde
    from openlineage.client.uuid import generate_new_uuid

    event = RunEvent(eventType=RunState.COMPLETE, eventTime=datetime.now(UTC).isoformat(),
                     run=Run(runId=str(generate_new_uuid()), facets=dict(lineage.run_facets)),
                     job=Job(namespace="ns", name="dag.task"), inputs=lineage.inputs, outputs=lineage.outputs,
                     producer="https://example.org/mlops-ops")  # fmt: skip
    return dict(json.loads(Serde.to_json(event)))


def test_every_stage_builds_events_the_spec_accepts() -> None:
    kafka = ol.kafka_ingest({"offsets": {"t/0": [5, 10], "t/1": [0, 3]}, "table": "p.raw", "snapshot_id": 7,
                             "published": False, "batch": "kafka-1"}, bootstrap="h:9092", catalog="mlops")  # fmt: skip
    s3 = ol.s3_ingest({"sources": [{"bucket": "b", "key": "in/a.csv", "etag": '"e1"'}], "table": "p.raw",
                       "snapshot_id": 8, "published": True, "batch": "s3-1"}, catalog="mlops")  # fmt: skip
    batches = {"kafka-1": {"staged_snapshot": 7, "docs_path": "v/x.html",
                           "assertions": [{"assertion": "expect_column_values_to_not_be_null", "success": True,
                                           "column": "id"}]}}  # fmt: skip
    gate = ol.quality_gate({"table": "p.raw", "snapshot_id": 9}, batches, catalog="mlops", suite="s",
                           docs_url="/mlops-ops/data-docs/p")  # fmt: skip
    features = ol.features_build({"features": "p.features@11", "raw_snapshot": 9}, catalog="mlops")
    train = ol.training({"features": "p.features@11", "version": "3", "run_id": "abc"}, catalog="mlops",
                        tracking_uri="http://127.0.0.1:5000", model_name="m")  # fmt: skip
    approve = ol.model_decision("http://127.0.0.1:5000", "m", "3", read=False, decision="approved",
                                decidedBy="alice", decidedAt="2026-12-02T00:00:00+00:00", comment="ok")  # fmt: skip
    drift = ol.drift_check({"reference": "p.features@11", "raw_snapshot": 12}, catalog="mlops", pipeline="p")
    for lineage in (kafka, s3, gate, features, train, approve, drift):
        validate(_event(lineage))
    event = _event(kafka)
    assert event["inputs"][0]["facets"]["mlopsOps_kafkaOffsets"]["partitions"] == [
        {"partition": 0, "startOffset": 5, "endOffset": 10},
        {"partition": 1, "startOffset": 0, "endOffset": 3},
    ]
    assert event["outputs"][0]["facets"]["mlopsOps_icebergSnapshot"]["branch"] == "audit_kafka"
    gate_event = _event(gate)
    assert gate_event["inputs"][0]["inputFacets"]["dataQualityAssertions"]["assertions"][0]["column"] == "id"
    assert gate_event["inputs"][0]["facets"]["mlopsOps_dataDocs"]["page"] == "/mlops-ops/data-docs/p/v/x.html"
    assert _event(approve)["outputs"][0]["facets"]["mlopsOps_modelVersion"]["decidedBy"] == "alice"
    assert _event(features)["inputs"][0]["facets"]["version"]["datasetVersion"] == "9"


def test_the_check_refuses_what_the_spec_does_not_allow() -> None:
    good = _event(ol.training({"features": "p.features@1", "version": "1", "run_id": "r"}, catalog="c",
                              tracking_uri="http://m", model_name="m"))  # fmt: skip
    validate(good)
    broken = [("run", "runId", "not-a-uuid"), ("job", "nam", "x"), (None, "eventType", "DONE")]
    for where, key, value in broken:
        event = json.loads(json.dumps(good))
        (event[where] if where else event)[key] = value
        with pytest.raises((AssertionError, ValueError)):
            validate(event)
    event = json.loads(json.dumps(good))
    event["run"]["facets"]["mlopsOps_mlflowRun"]["runId"] = 5  # our own facet, against its shipped JSON Schema
    with pytest.raises(AssertionError, match="runId"):
        validate(event)
    event = json.loads(json.dumps(good))
    del event["outputs"][0]["facets"]["version"]["_producer"]
    with pytest.raises(AssertionError, match="_producer"):
        validate(event)


def test_model_ref_and_chain_text() -> None:
    assert parse_model_ref("churn@3") == ("churn", "3")
    for bad in ("churn", "churn@", "@3", "churn@latest"):
        with pytest.raises(ValueError, match="MODEL@VERSION"):
            parse_model_ref(bad)
    chain = Chain("churn", "3", "run1", ["champion"], {"mlops_ops.approval": "approved",
                  "mlops_ops.approval_by": "alice", "mlops_ops.approval_at": "t"}, "p.features@11", 9,
                  [Batch("kafka-1", "kafka", 9, 100, kafka_offsets={"t/0": [0, 100]},
                         gate={"suite": "s", "passed": True, "evaluated": 3, "failed": 0, "warnings": 0,
                               "docs_path": "d.html", "run_id": "r"})])  # fmt: skip
    text = render(chain)
    assert "churn v3  aliases: champion" in text and "approval: approved by alice" in text
    assert "kafka t/0 offsets 0..99" in text and "gate s: passed (3 expectations" in text
    assert "built from raw snapshot 9" in text and "features: p.features@11" in text
