"""The approval gate under Airflow's real scheduler (PostgreSQL metadata DB, LocalExecutor), answered through the
REST API exactly as the Required Actions page does.

One spec-built pipeline with ``promote.approval`` (timeout 1 minute): ingest -> gate -> training run started by
the raw Asset event -> evaluate -> approve (waits for a person) -> promote. Approve moves the alias; Reject and a
timeout leave the aliases as they are; marking the approval task successful by hand does not promote either.
Each decision, who made it, when and the comment are tags on the model version.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest

from mlops_ops.testing.airflow_services import AirflowServices
from tests.integration.churn_data import clean_rows, kafka_pipeline_spec, pipeline_services
from tests.integration.lake_helpers import produce

TRAIN = "  trainer: sklearn\n  params: {max_iter: 30}"
APPROVAL = "  approval: {timeout: 1m, approvers: [admin]}\n"


@pytest.fixture(scope="module")
def gated(postgres_stack, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    from confluent_kafka.admin import AdminClient, NewTopic

    stack = postgres_stack
    root = tmp_path_factory.mktemp("approval")
    names = {"pipeline": f"appr_{uuid.uuid4().hex[:6]}", "topic": f"appr-{uuid.uuid4().hex[:6]}",
             "model": f"appr-{uuid.uuid4().hex[:6]}"}  # fmt: skip
    bootstrap = f"127.0.0.1:{stack.settings.ports['kafka']}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(names["topic"], 1)])[names["topic"]].result(10)
    produce(bootstrap, names["topic"], [json.dumps(r).encode() for r in clean_rows(1_500, seed=31)])
    spec = kafka_pipeline_spec(**names, train=TRAIN)
    spec = spec.replace(f"  model_name: {names['model']}\n", f"  model_name: {names['model']}\n{APPROVAL}")
    assert APPROVAL in spec
    services = pipeline_services(stack, root, names["pipeline"], spec)
    services.start()
    try:
        yield {**names, "services": services, "mlflow": stack.environment()["MLFLOW_TRACKING_URI"]}
    finally:
        services.stop()


def _hitl(dag_id: str, run_id: str) -> str:
    return f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve/-1/hitlDetails"


def _waiting(services: AirflowServices, dag_id: str, run_id: str) -> dict[str, Any] | None:
    """The approval request once the task waits for a person and the scheduler has handled its parked process's
    exit: an answer before that races Airflow 3.3.2's scheduler (the exit event, processed after the resume, fails
    the task; docs/approval.md)."""
    if services.task_states(dag_id, run_id).get("approve") != "awaiting_input":
        return None
    if not services.exit_handled(dag_id, "approve", run_id):
        return None
    status, detail = services.request("GET", _hitl(dag_id, run_id))
    if status != 200:
        return None
    return detail  # type: ignore[no-any-return]


def _finished(services: AirflowServices, dag_id: str, run_id: str) -> dict[str, Any] | None:
    status, run = services.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}")
    return run if status == 200 and run["state"] in ("success", "failed") else None


def _trigger(services: AirflowServices, dag_id: str, reason: str, seed: int | None = None) -> str:
    """A manual run; ``seed``: a training request of its own (the same request on the same features snapshot is
    the champion's twin, never blessed, so never put to a person)."""
    conf: dict[str, Any] = {"reason": reason, **({"train_params": {"seed": seed}} if seed is not None else {})}
    status, run = services.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})
    assert status == 200, run
    return str(run["dag_run_id"])


def test_approve_reject_timeout_a_hand_marked_success_and_a_replay(gated: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    services: AirflowServices = gated["services"]
    ingest, training = f"{gated['pipeline']}__ingest", f"{gated['pipeline']}__training"
    client = MlflowClient(gated["mlflow"], gated["mlflow"])
    model = gated["model"]
    for dag_id in (ingest, training):
        services.wait_for(f"{dag_id} parsed", lambda d=dag_id: services.request("GET", f"/api/v2/dags/{d}")[0] == 200)
    assert _trigger(services, ingest, "data")

    # 1. the published batch starts a training run; the blessed challenger waits for a person, with its evidence
    first = services.wait_for("the asset-triggered training run", lambda: services.runs(training), timeout=300)[0]
    run_id = first["dag_run_id"]
    assert first["run_type"] == "asset_triggered"
    detail = services.wait_for("the approval request", lambda: _waiting(services, training, run_id), timeout=600)
    assert detail["subject"] == f"Promote {model} v1 to champion?"
    assert detail["options"] == ["Approve", "Reject"] and detail["defaults"] == ["Reject"]
    assert [u["id"] for u in detail["assigned_users"]] == ["admin"]
    assert list(detail["params"]) == ["comment"]  # the form asks for a comment only, not the DAG's own Params
    body = detail["body"]
    assert "| roc_auc |" in body and "| accuracy |" in body and "There is no champion yet." in body, body
    assert "| churn_raw | passed | 1500 |" in body and f"[Data Docs](/mlops-ops/data-docs/{gated['pipeline']}/" in body
    assert "Not a drift signal (run type: asset_triggered)" in body and "/#/runs/" in body
    assert client.get_model_version(model, "1").tags["mlops_ops.approval"] == "pending"
    with pytest.raises(Exception, match=r"RESOURCE_DOES_NOT_EXIST|not found"):
        client.get_model_version_by_alias(model, "champion")  # nothing moves while waiting

    # a bad answer is refused by the API (the task keeps waiting)
    status, _ = services.request("PATCH", _hitl(training, run_id), {"chosen_options": ["Maybe"], "params_input": {}})
    assert status == 400

    # 2. approve with a comment: promoted; the decision is on the version
    answer = {"chosen_options": ["Approve"], "params_input": {"comment": "lift is real"}}
    status, answer = services.request("PATCH", _hitl(training, run_id), answer)
    assert status == 200, answer
    done = services.wait_for("the approved run", lambda: _finished(services, training, run_id), timeout=300)
    assert done["state"] == "success"
    assert services.task_states(training, run_id)["promote"] == "success"
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    tags = client.get_model_version(model, "1").tags
    assert tags["mlops_ops.approval"] == "approved" and tags["mlops_ops.approval_comment"] == "lift is real"
    assert tags["mlops_ops.approval_by"] and tags["mlops_ops.approval_at"].startswith("20")
    assert tags["mlops_ops.approval_run"] == f"{training}/{run_id}"

    # 3. reject: the run succeeds, promote is skipped, the champion stays
    run_id = _trigger(services, training, "reject path", seed=2)
    detail = services.wait_for("the second request", lambda: _waiting(services, training, run_id), timeout=600)
    assert "Champion: v1." in detail["body"] and f"Promote {model} v2" in detail["subject"]
    answer = {"chosen_options": ["Reject"], "params_input": {"comment": "slice regressed"}}
    status, answer = services.request("PATCH", _hitl(training, run_id), answer)
    assert status == 200, answer
    services.wait_for("the rejected run", lambda: _finished(services, training, run_id), timeout=300)
    assert services.task_states(training, run_id)["promote"] == "skipped"
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    tags = client.get_model_version(model, "2").tags
    assert tags["mlops_ops.approval"] == "rejected" and tags["mlops_ops.approval_comment"] == "slice regressed"

    # 4. nobody answers: after the timeout the scheduler applies the default (Reject), recorded as timed_out
    run_id = _trigger(services, training, "timeout path", seed=3)
    services.wait_for("the third request", lambda: _waiting(services, training, run_id), timeout=600)
    # N15: a run started while a challenger waits for a person queues behind it (max_active_runs=1) and starts only
    # once the decision is made (here: the timeout); it becomes the bypass attempt of step 5
    queued_id = _trigger(services, training, "bypass attempt", seed=4)
    timed_out = services.wait_for("the timed-out run", lambda: _finished(services, training, run_id), timeout=300,
                                  every=3)  # fmt: skip
    queued = next(r for r in services.runs(training) if r["dag_run_id"] == queued_id)
    assert queued["start_date"] is None or queued["start_date"] >= timed_out["end_date"], (queued, timed_out)
    assert services.task_states(training, run_id)["promote"] == "skipped"
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    tags = client.get_model_version(model, "3").tags
    assert tags["mlops_ops.approval"] == "timed_out" and tags["mlops_ops.approval_by"] == "nobody (timed out)"

    # 5. someone marks the waiting approval task successful by hand: promote refuses, the champion stays
    run_id = queued_id
    services.wait_for("the fourth request", lambda: _waiting(services, training, run_id), timeout=600)
    path = f"/api/v2/dags/{training}/dagRuns/{quote(run_id, safe='')}/taskInstances/approve"
    status, body = services.request("PATCH", path, {"new_state": "success"})
    assert status == 200, body
    done = services.wait_for("the bypassed run", lambda: _finished(services, training, run_id), timeout=300)
    assert done["state"] == "failed" and services.task_states(training, run_id)["promote"] == "failed"
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    assert client.get_model_version(model, "4").tags["mlops_ops.approval"] == "pending"

    # 6. the DAG Param replay_of: version 1 trained again from what it recorded; evaluated, never put to a person,
    # never promoted, no alias moved (the CLI's replay compares metrics: tests/integration/test_replay.py)
    challenger = client.get_model_version_by_alias(model, "challenger").version
    conf = {"replay_of": f"{model}@1", "reason": "replay"}
    status, run = services.request("POST", f"/api/v2/dags/{training}/dagRuns", {"logical_date": None, "conf": conf})
    assert status == 200, run
    done = services.wait_for("the replay run", lambda: _finished(services, training, run["dag_run_id"]), timeout=600)
    states = services.task_states(training, run["dag_run_id"])
    assert done["state"] == "success" and states["train"] == "success" and states["evaluate"] == "success", states
    assert states["approve"] == "skipped" and states["promote"] == "skipped", states
    replayed = client.get_model_version(model, "5")
    assert replayed.tags["mlops_ops.replay_of"] == f"{model}@1"
    first = client.get_model_version(model, "1").tags
    assert replayed.tags["mlops_ops.features_snapshot"] == first["mlops_ops.features_snapshot"]
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    assert client.get_model_version_by_alias(model, "challenger").version == challenger
    status, _ = services.request("POST", f"/api/v2/dags/{training}/dagRuns",
                                 {"logical_date": None, "conf": {"replay_of": "not a version"}})  # fmt: skip
    assert status == 400  # the Param's pattern: MODEL@VERSION
    # hyper-parameters at trigger time are bounded by the trainer's parameter schema: a runaway job is refused
    for oversized in ({"max_iter": 1e12}, {f"k{i}": 1 for i in range(65)}, {"x": "a" * 10_000}):
        status, reply = services.request("POST", f"/api/v2/dags/{training}/dagRuns",
                                         {"logical_date": None, "conf": {"train_params": oversized}})  # fmt: skip
        assert status == 400 and "train_params" in str(reply), reply
