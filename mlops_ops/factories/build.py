"""DAG plans → Airflow DAGs: the operator class of each planned task, schedules with Asset watchers, Params."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Asset

from mlops_ops.naming import ASSET_GROUP


def _operator_class(name: str) -> type:
    """Only operators of this library can appear in a plan; names map to classes here, not via import paths."""
    if name == "kafka_to_lake":
        from mlops_ops.operators.kafka import KafkaToLakeOperator

        return KafkaToLakeOperator
    if name == "s3_to_lake":
        from mlops_ops.operators.s3 import S3ToLakeOperator

        return S3ToLakeOperator
    if name == "train_model":
        from mlops_ops.operators.train import TrainModelOperator

        return TrainModelOperator
    if name == "train_model_docker":
        from mlops_ops.operators.train_docker import TrainModelDockerOperator

        return TrainModelDockerOperator
    if name == "train_model_kubernetes":
        from mlops_ops.operators.train_kubernetes import TrainModelKubernetesOperator

        return TrainModelKubernetesOperator
    if name in ("evaluate_model", "promote_model"):
        from mlops_ops.operators import evaluate

        return evaluate.EvaluateModelOperator if name == "evaluate_model" else evaluate.PromoteModelOperator
    if name == "approve_model":
        from mlops_ops.operators.approve import ApproveModelOperator

        return ApproveModelOperator
    if name == "quality_gate":
        from mlops_ops.operators.gx import QualityGateOperator

        return QualityGateOperator
    if name in ("drift_check", "drift_signal"):
        from mlops_ops.operators import drift

        return drift.DriftCheckOperator if name == "drift_check" else drift.DriftSignalOperator
    if name == "spark_preprocess":
        from mlops_ops.operators.spark import SparkPreprocessOperator

        return SparkPreprocessOperator
    raise ValueError(f"unknown operator '{name}' in a DAG plan")


def _params(train: bool, schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """Trigger-time settings, validated by Airflow (JSON schema): a bad ``conf`` is refused (the REST API answers
    400), the UI shows a form. ``train_params`` is bounded by the trainer's parameter schema."""
    if not train:
        return None
    from airflow.sdk import Param

    from mlops_ops.naming import REPLAY_PARAM, TRAIN_PARAMS_KEY
    from mlops_ops.training.params_schema import DRAFT

    draft: dict[str, Any] = {"$schema": DRAFT}  # Airflow re-checks each Param's schema at every parse: draft 7 is cheap

    return {
        TRAIN_PARAMS_KEY: Param(
            {},
            **{"$schema": DRAFT, "type": "object", **(schema or {})},
            title="Hyper-parameters",
            description='JSON object overriding the spec\'s train.params for this run, e.g. {"epochs": 4, "lr": 0.001}',
        ),
        REPLAY_PARAM: Param(
            None,
            **draft,
            type=["null", "string"],
            pattern=r"^.+@[0-9]+$",
            title="Replay a version",
            description="MODEL@VERSION: train again from what that version recorded (its features snapshot, settings, "
            "trainer and hyper-parameters); the new version is evaluated but never promoted, and no alias moves",
        ),
        # ["null", "string"]: optional in the trigger form (a plain string is required there, "" counts as missing)
        "reason": Param(
            None,
            **draft,
            type=["null", "string"],
            maxLength=500,
            title="Reason",
            description="why this run was started (kept on the run for the audit trail)",
        ),
    }


def _watcher_trigger(spec: dict[str, Any]) -> Any:
    kind, kwargs = spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    if kind == "control":
        from mlops_ops.triggers.control import ControlTopicTrigger

        return ControlTopicTrigger(**kwargs)
    from mlops_ops.triggers.sources import KafkaArrivalsTrigger, S3ArrivalsTrigger

    return {"s3": S3ArrivalsTrigger, "kafka": KafkaArrivalsTrigger}[kind](**kwargs)


def _schedule(cron: str | None, trigger_assets: list[dict[str, Any]]) -> Any:
    """The spec's schedule, OR-ed with the trigger Assets (source arrivals, new raw data, drift, control topic)."""
    if not trigger_assets:
        return cron
    from airflow.sdk import AssetAny, AssetWatcher

    from mlops_ops._compat import asset_or_time_schedule, cron_trigger_timetable

    assets = []
    for entry in trigger_assets:
        watchers = []
        if entry.get("watcher"):
            name = entry["name"].replace(".", "_") + "_watcher"
            watchers.append(AssetWatcher(name=name, trigger=_watcher_trigger(entry["watcher"])))
        assets.append(Asset(name=entry["name"], group=ASSET_GROUP, watchers=watchers))
    condition = assets[0] if len(assets) == 1 else AssetAny(*assets)
    if cron is None:
        return condition
    timetable = cron_trigger_timetable()(cron, timezone="UTC")
    return asset_or_time_schedule()(timetable=timetable, assets=condition)


def dag_from_plan(plan: dict[str, Any]) -> DAG:
    d = plan["dag"]
    dag = DAG(
        dag_id=d["dag_id"],
        description=d["description"],
        schedule=_schedule(d["schedule"], d.get("trigger_assets", [])),
        start_date=datetime.fromisoformat(d["start_date"]),
        catchup=d["catchup"],
        max_active_runs=d["max_active_runs"],
        tags=d["tags"],
        default_args={
            "owner": d["owner"],
            "retries": d["retries"],
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
        },
        doc_md=d["doc_md"],
        params=_params(d.get("train_params", False), d.get("train_params_schema")),
    )
    with dag:
        built: dict[str, Any] = {}
        for task in plan["tasks"]:
            outlets = [Asset(name=name, group=ASSET_GROUP) for name in task.get("outlets", [])]
            inlets = [Asset(name=name, group=ASSET_GROUP) for name in task.get("inlets", [])]
            timeout = {"execution_timeout": timedelta(seconds=task["timeout_s"])} if "timeout_s" in task else {}
            op = _operator_class(task["operator"])(**task["kwargs"], **timeout, outlets=outlets, inlets=inlets)
            for upstream in task.get("upstream", []):
                built[upstream] >> op
            built[op.task_id] = op
    return dag
