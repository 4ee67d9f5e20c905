"""Spec → DAG plans: every decision about what a pipeline's DAGs contain, as plain JSON-able data.

A pipeline has up to three DAGs:

* ``<pipeline>__ingest``: the **only writer** of ``<pipeline>.raw``. Its source tasks stage batches on the
  table's audit branches; the quality gate publishes or quarantines them (without a gate the source tasks
  publish). Runs on the spec's ``schedule`` and/or when its sources have something new (AssetWatchers).
* ``<pipeline>__training``: preprocess (incremental) → train → evaluate → [approve] → promote, on new published
  raw data, a drift signal or a control-topic request. It never ingests.
* ``<pipeline>__drift``: drift check → signal, on ``drift.schedule``. It never ingests.

Keeping the decisions in data lets the loader cache them per spec file, so parsing an unchanged spec needs
neither YAML validation nor the pydantic models (:mod:`mlops_ops.factories.plan_cache`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from mlops_ops import naming
from mlops_ops.durations import parse_duration
from mlops_ops.exceptions import StageNotSupportedError
from mlops_ops.factories import docs

if TYPE_CHECKING:
    from mlops_ops.spec import PipelineSpec

SUPPORTED_STAGES = (
    "source.kafka",
    "source.s3",
    "quality",
    "preprocess",
    "train",
    "evaluate",
    "promote",
    "drift",
    "retrain",
)


# Which ``timeouts`` entry bounds each operator (the approval task waits on its own ``promote.approval.timeout``).
STAGE_OF_OPERATOR = {
    "kafka_to_lake": "ingest",
    "s3_to_lake": "ingest",
    "spark_preprocess": "preprocess",
    "quality_gate": "quality",
    "train_model": "train",
    "train_model_docker": "train",
    "train_model_kubernetes": "train",
    "evaluate_model": "evaluate",
    "promote_model": "promote",
    "drift_check": "drift",
    "drift_signal": "drift",
}


class TaskPlan(TypedDict, total=False):
    operator: str
    kwargs: dict[str, Any]
    timeout_s: int  # the task's execution_timeout (the spec's ``timeouts`` of its stage)
    outlets: list[str]
    inlets: list[str]
    upstream: list[str]


class DagSettings(TypedDict):
    dag_id: str
    description: str
    schedule: str | None
    trigger_assets: list[dict[str, Any]]
    start_date: str
    catchup: bool
    max_active_runs: int
    tags: list[str]
    owner: str
    retries: int
    doc_md: str
    train_params: bool
    train_params_schema: dict[str, Any] | None


class DagPlan(TypedDict):
    dag: DagSettings
    tasks: list[TaskPlan]


def check_supported(spec: PipelineSpec, source: str) -> None:
    for stage in spec.stages():
        if stage not in SUPPORTED_STAGES:
            raise StageNotSupportedError(source, stage, list(SUPPORTED_STAGES))


def _common(spec: PipelineSpec) -> dict[str, Any]:
    return {"pipeline": spec.pipeline, **({"lake": spec.lake} if spec.lake else {})}


def _dag(
    spec: PipelineSpec,
    dag_id: str,
    description: str,
    schedule: str | None,
    doc_md: str,
    trigger_assets: list[dict[str, Any]],
    extra_tags: tuple[str, ...] = (),
    train_params: bool = False,
    train_params_schema: dict[str, Any] | None = None,
) -> DagSettings:
    return {
        "dag_id": dag_id,
        "description": description[:200],
        "schedule": schedule,
        "trigger_assets": trigger_assets,
        "start_date": spec.start_date.isoformat(),
        "catchup": False,
        # not what keeps raw single-writer (commits are conditional); it just avoids runs that would lose
        "max_active_runs": 1,
        "tags": sorted({"mlops-ops", spec.pipeline, *extra_tags, *spec.tags}),
        "owner": ",".join(spec.owners),
        "retries": spec.retries,
        "doc_md": doc_md,
        "train_params": train_params,
        "train_params_schema": train_params_schema,
    }


def plan_ingest_dag(spec: PipelineSpec, *, source: str = "<spec>") -> DagPlan:
    assert spec.source is not None
    gated = spec.quality is not None
    raw = naming.raw_asset_name(spec.pipeline)
    tasks: list[TaskPlan] = []
    watchers: list[dict[str, Any]] = []
    kafka, s3 = spec.source.kafka, spec.source.s3
    if kafka is not None:
        tasks.append(
            {
                "operator": "kafka_to_lake",
                "outlets": [] if gated else [raw],
                "kwargs": {
                    "task_id": naming.INGEST_KAFKA_TASK,
                    **_common(spec),
                    "topics": list(kafka.topics),
                    "kafka_config_id": kafka.conn_id,
                    "group_id": kafka.group_id,
                    "deserializer": kafka.deserializer,
                    "schema": dict(kafka.schema_) if kafka.schema_ else None,
                    "max_messages": kafka.max_messages,
                    "rows_per_file": kafka.rows_per_file,
                    "poll_timeout_s": kafka.poll_timeout_s,
                    "max_bad_share": kafka.dead_letter.max_bad_share,
                    "max_value_bytes": kafka.max_value_bytes,
                    "on_gap": kafka.on_gap,
                    "dead_letter_topic": kafka.dead_letter.topic,
                    "publish": not gated,
                },
            }
        )
        if kafka.watch:
            watchers.append(
                {
                    "name": naming.source_asset_name(spec.pipeline, "kafka"),
                    "watcher": {
                        "kind": "kafka",
                        "poll_interval": kafka.poll_interval_s,
                        "pipeline": spec.pipeline,
                        "topics": list(kafka.topics),
                        "kafka_config_id": kafka.conn_id,
                        "iceberg_conn_id": "iceberg_default",
                    },
                }
            )
    if s3 is not None:
        tasks.append(
            {
                "operator": "s3_to_lake",
                "outlets": [] if gated else [raw],
                "kwargs": {
                    "task_id": naming.INGEST_S3_TASK,
                    **_common(spec),
                    "bucket": s3.bucket,
                    "prefix": s3.prefix,
                    "glob": s3.glob,
                    "format": s3.format,
                    "source_conn_id": s3.conn_id,
                    "on_change": s3.on_change,
                    "schema": dict(s3.schema_) if s3.schema_ else None,
                    "rows_per_file": s3.rows_per_file,
                    "publish": not gated,
                },
            }
        )
        if s3.watch:
            watchers.append(
                {
                    "name": naming.source_asset_name(spec.pipeline, "s3"),
                    "watcher": {
                        "kind": "s3",
                        "poll_interval": s3.poll_interval_s,
                        "pipeline": spec.pipeline,
                        "bucket": s3.bucket,
                        "prefix": s3.prefix,
                        "glob": s3.glob,
                        "on_change": s3.on_change,
                        "source_conn_id": s3.conn_id,
                        "iceberg_conn_id": "iceberg_default",
                    },
                }
            )
    ingest_ids = [t["kwargs"]["task_id"] for t in tasks]
    if gated:
        assert spec.quality is not None
        tasks.append(
            {
                "operator": "quality_gate",
                "outlets": [raw],
                "upstream": ingest_ids,
                "kwargs": {
                    "task_id": naming.QUALITY_GATE_TASK,
                    **_common(spec),
                    "suite": spec.quality.suite,
                    "engine": spec.quality.engine,
                    # with two sources, one having nothing new must not hold back the other
                    "trigger_rule": "none_failed_min_one_success",
                },
            }
        )
    dag = _dag(
        spec,
        naming.ingest_dag_id(spec.pipeline),
        f"Ingest {spec.pipeline}: the only writer of {spec.pipeline}.raw",
        spec.schedule,
        docs.ingest_doc(spec, source),
        watchers,
        ("ingest",),
    )
    return {"dag": dag, "tasks": tasks}


def plan_training_dag(spec: PipelineSpec, *, source: str = "<spec>") -> DagPlan | None:
    pre = spec.preprocess
    if pre is None:
        return None
    tasks: list[TaskPlan] = [
        {
            "operator": "spark_preprocess",
            "outlets": [naming.features_asset_name(spec.pipeline)],
            "kwargs": {
                "task_id": naming.PREPROCESS_TASK,
                **_common(spec),
                "key_column": pre.key_column,
                "transform": pre.transform,
                "sql": _sql_path(pre.sql, source),
                "transform_params": dict(pre.params),
                "splits": pre.splits.model_dump(),
                "full_rebuild": pre.full_rebuild,
            },
        },
    ]
    tasks += _train_evaluate_promote(spec)
    dag = _dag(
        spec,
        naming.training_dag_id(spec.pipeline),
        spec.description or f"mlops-ops pipeline {spec.pipeline}",
        None,
        docs.training_doc(spec, source),
        _training_triggers(spec),
        train_params=spec.train is not None,
        train_params_schema=_params_schema(spec),
    )
    return {"dag": dag, "tasks": tasks}


def _training_triggers(spec: PipelineSpec) -> list[dict[str, Any]]:
    """Assets that start a training run: new published raw data, drift signals, control-topic requests."""
    retrain = spec.retrain
    assets: list[dict[str, Any]] = []
    if retrain is None or retrain.on_new_data:
        assets.append({"name": naming.raw_asset_name(spec.pipeline)})
    if spec.train is None:
        return assets
    if spec.drift is not None and (retrain is None or retrain.on_drift):
        assets.append({"name": naming.drift_asset_name(spec.pipeline)})
    if retrain is not None and retrain.control_topic:
        assets.append(
            {
                "name": naming.control_asset_name(spec.pipeline),
                "watcher": {
                    "kind": "control",
                    "pipeline": spec.pipeline,
                    "topic": retrain.control_topic,
                    "kafka_config_id": retrain.control_conn_id,
                    "cooldown_s": parse_duration(retrain.control_cooldown).total_seconds(),
                },
            }
        )
    return assets


def _params_schema(spec: PipelineSpec) -> dict[str, Any] | None:
    if spec.train is None:
        return None
    from mlops_ops.training.params_schema import schema_for

    return schema_for(spec.train.trainer, spec.train.params_schema)


def _train_evaluate_promote(spec: PipelineSpec) -> list[TaskPlan]:
    train = spec.train
    if train is None:
        return []
    from mlops_ops import __version__

    model_name = spec.promote.model_name if spec.promote else spec.pipeline
    # The one place the backend is chosen: one operator class per executor (factories/build.py maps the names).
    operator = {"local": "train_model", "docker": "train_model_docker", "kubernetes": "train_model_kubernetes"}
    kwargs: dict[str, Any] = {
        "task_id": naming.TRAIN_TASK,
        "training": {
            "pipeline": spec.pipeline,
            "model_name": model_name,
            "target": train.target,
            "task": train.task,
            "model_options": train.model_dump(
                mode="json", include={"positive_class", "threshold", "estimator", "features", "max_rows"}
            ),
            "trainer": train.trainer,
            "trainer_params": dict(train.params),
            "params_schema": _params_schema(spec),
        },
    }
    if train.executor != "local":
        kwargs["container"] = train.container(f"mlops-ops-trainer:{__version__}").model_dump(mode="json")
    tasks: list[TaskPlan] = [
        {
            "operator": operator[train.executor],
            "outlets": [],
            "upstream": [naming.PREPROCESS_TASK],
            "kwargs": kwargs,
        }
    ]
    ev = spec.evaluate
    if ev is not None:
        tasks.append(
            {
                "operator": "evaluate_model",
                "outlets": [],
                "upstream": [naming.TRAIN_TASK],
                "kwargs": {
                    "task_id": naming.EVALUATE_TASK,
                    "model_name": model_name,
                    "target": train.target,
                    "task": train.task,
                    "metrics": list(ev.metrics),
                    "thresholds": {k: v.model_dump() for k, v in ev.thresholds.items()},
                    "max_regression": dict(ev.max_regression),
                    "custom_metrics": {k: v.model_dump() for k, v in ev.custom_metrics.items()},
                    "slice_column": ev.slice_column,
                    "beat_baseline": ev.beat_baseline,
                },
            }
        )
    if spec.promote is not None:
        approval = spec.promote.approval
        approved = approval is not None and approval.required
        if approval is not None and approved:
            tasks.append(
                {
                    "operator": "approve_model",
                    "outlets": [],
                    "upstream": [naming.EVALUATE_TASK],
                    "kwargs": {
                        "task_id": naming.APPROVE_TASK,
                        "model_name": model_name,
                        "pipeline": spec.pipeline,
                        "response_timeout": approval.timeout,
                        "approvers": list(approval.approvers),
                        "retries": 0,  # a retry would ask again after someone answered
                    },
                }
            )
        tasks.append(
            {
                "operator": "promote_model",
                "outlets": [naming.model_asset_name(spec.pipeline)],
                "upstream": [naming.APPROVE_TASK if approved else naming.EVALUATE_TASK],
                "kwargs": {"task_id": naming.PROMOTE_TASK, "model_name": model_name, "require_approval": approved},
            }
        )
    return tasks


def plan_drift_dag(spec: PipelineSpec, *, source: str = "<spec>") -> DagPlan:
    """Check the data published since the last check against the champion's; signal retraining on drift."""
    drift, pre, train = spec.drift, spec.preprocess, spec.train
    if drift is None or pre is None or train is None:
        raise ValueError("a drift DAG needs the drift, preprocess and train stages")
    model_name = spec.promote.model_name if spec.promote else spec.pipeline
    drift_asset = naming.drift_asset_name(spec.pipeline)
    tasks: list[TaskPlan] = [
        {
            "operator": "drift_check",
            "outlets": [],
            "kwargs": {
                "task_id": naming.DRIFT_CHECK_TASK,
                **_common(spec),
                "model_name": model_name,
                "key_column": pre.key_column,
                "target": train.target,
                "transform": pre.transform,
                "sql": _sql_path(pre.sql, source),
                "transform_params": dict(pre.params),
                "window": drift.window,
                "drift_share": drift.drift_share,
                "column_threshold": drift.column_threshold,
                "max_rows": drift.max_rows,
            },
        },
        {
            "operator": "drift_signal",
            "outlets": [drift_asset],
            "inlets": [drift_asset],
            "upstream": [naming.DRIFT_CHECK_TASK],
            "kwargs": {
                "task_id": naming.DRIFT_SIGNAL_TASK,
                "cooldown": drift.cooldown,
                "backfill_retrains": drift.backfill_retrains,
                "retries": 0,
            },
        },
    ]
    dag = _dag(
        spec,
        naming.drift_dag_id(spec.pipeline),
        f"Drift monitoring of {spec.pipeline}: new data vs the champion's training data",
        drift.schedule,
        docs.drift_doc(spec, source),
        [],
        ("drift",),
    )
    return {"dag": dag, "tasks": tasks}


def _sql_path(sql: str | None, source: str) -> str | None:
    """A relative ``.sql`` file is relative to the spec file."""
    if sql is not None and sql.strip().endswith(".sql") and not Path(sql.strip()).is_absolute():
        return str(Path(source).parent / sql.strip())
    return sql


def plan_dags(spec: PipelineSpec, *, source: str | Path = "<spec>") -> list[DagPlan]:
    """Plans of every DAG a spec describes: ingest, training (with a preprocess stage), drift (with one)."""
    source = str(source)
    check_supported(spec, source)
    plans: list[DagPlan] = [plan_ingest_dag(spec, source=source)]
    training = plan_training_dag(spec, source=source)
    if training is not None:
        plans.append(training)
    if spec.drift is not None:
        plans.append(plan_drift_dag(spec, source=source))
    for plan in plans:
        for task in plan["tasks"]:
            stage = STAGE_OF_OPERATOR.get(task["operator"])
            if stage is not None:
                task["timeout_s"] = int(parse_duration(getattr(spec.timeouts, stage)).total_seconds())
    return plans
