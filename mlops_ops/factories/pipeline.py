"""Build Airflow DAGs from a :class:`~mlops_ops.spec.PipelineSpec`.

Only stages whose operators exist are accepted; any other stage in a spec is
rejected with :class:`~mlops_ops.exceptions.StageNotSupportedError` rather than
turned into a placeholder task.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset

from mlops_ops.exceptions import StageNotSupportedError

if TYPE_CHECKING:
    from mlops_ops.spec import PipelineSpec

SUPPORTED_STAGES = ("source.kafka", "source.s3", "quality", "preprocess", "train", "evaluate", "promote", "drift",
                    "retrain")  # fmt: skip
TRAINING_SUFFIX = "__training"
DRIFT_SUFFIX = "__drift"
DAG_SUFFIXES = (TRAINING_SUFFIX, DRIFT_SUFFIX)


def training_dag_id(pipeline: str) -> str:
    return pipeline + TRAINING_SUFFIX


def pipeline_of_dag_id(dag_id: str) -> str | None:
    """The pipeline a factory-built DAG id belongs to, or ``None`` for other DAGs."""
    for suffix in DAG_SUFFIXES:
        if dag_id.endswith(suffix):
            return dag_id[: -len(suffix)]
    return None


def drift_dag_id(pipeline: str) -> str:
    return pipeline + DRIFT_SUFFIX


def raw_asset_name(pipeline: str) -> str:
    return f"mlops_ops.{pipeline}.raw"


def features_asset_name(pipeline: str) -> str:
    return f"mlops_ops.{pipeline}.features"


def model_asset_name(pipeline: str) -> str:
    return f"mlops_ops.{pipeline}.model"


def drift_asset_name(pipeline: str) -> str:
    """Updated when a drift check finds drift (and the cool-down has passed): the training DAG runs on it."""
    return f"mlops_ops.{pipeline}.drift"


def control_asset_name(pipeline: str) -> str:
    """Updated by the watcher of the Kafka control topic for each retraining request."""
    return f"mlops_ops.{pipeline}.retrain_request"


def raw_asset(pipeline: str) -> Asset:
    """The Asset updated each time new raw data of ``pipeline`` lands in the lake."""
    return Asset(name=raw_asset_name(pipeline), group="mlops-ops")


def check_supported(spec: PipelineSpec, source: str) -> None:
    for stage in spec.stages():
        if stage not in SUPPORTED_STAGES:
            raise StageNotSupportedError(source, stage, list(SUPPORTED_STAGES))


def _doc_md(spec: PipelineSpec, source: str) -> str:
    kafka = spec.source.kafka if spec.source else None
    lines = [f"# {spec.pipeline}", "", spec.description or "ML pipeline built by mlops-ops.", "",
             f"*Spec:* `{source}`", "", "| stage | settings |", "|---|---|"]  # fmt: skip
    s3 = spec.source.s3 if spec.source else None
    if s3 is not None:
        lines.append(
            f"| source.s3 | s3://{s3.bucket}/{s3.prefix}{s3.glob} ({s3.format}); changed objects: {s3.on_change} |"
        )
    if kafka is not None:
        schema = ", ".join(f"{k}: {v}" for k, v in (kafka.schema_ or {}).items()) or "inferred"
        lines.append(
            f"| source.kafka | topics {', '.join(kafka.topics)}; schema {schema}; "
            f"max bad share {kafka.dead_letter.max_bad_share:.0%} |"
        )
    if spec.quality is not None:
        lines.append(
            f"| quality | GX suite `{spec.quality.suite}` ({spec.quality.engine}); failures quarantine the batch |"
        )
    if spec.preprocess is not None:
        pre = spec.preprocess
        lines.append(f"| preprocess | {pre.transform or pre.sql}; splits by hash of `{pre.key_column}` |")
    if spec.train is not None:
        t = spec.train
        lines.append(
            f"| train | {t.trainer} ({t.task}, target `{t.target}`) on {t.executor}; GPUs {t.resources.gpus} |"
        )
    if spec.evaluate is not None:
        lines.append(f"| evaluate | {', '.join(spec.evaluate.metrics)} vs the champion on the test split |")
    if spec.promote is not None:
        lines.append(f"| promote | `{spec.promote.model_name}@champion` when blessed; `previous` keeps the last one |")
    if spec.drift is not None:
        lines.append(f"| drift | `{drift_dag_id(spec.pipeline)}` ({spec.drift.schedule}); drift retrains this DAG, "
                     f"cool-down {spec.drift.cooldown} |")  # fmt: skip
    if spec.retrain is not None and spec.retrain.control_topic:
        lines.append(f"| retrain | a message `{{\"pipeline\": \"{spec.pipeline}\", \"reason\": ...}}` on Kafka topic "
                     f"`{spec.retrain.control_topic}` starts a run |")  # fmt: skip
    return "\n".join(lines)


def plan_training_dag(spec: PipelineSpec, *, source: str | Path = "<spec>") -> dict[str, Any]:
    """The pipeline's main DAG as plain JSON-able data: what :func:`dag_from_plan` builds.

    Keeping the spec-to-DAG decisions in data lets the loader cache them per spec file,
    so parsing an unchanged spec needs neither YAML validation nor the pydantic models.
    """
    source = str(source)
    check_supported(spec, source)
    tasks = _ingest(spec)
    ingest_ids = [t["kwargs"]["task_id"] for t in tasks if t["operator"] != "new_s3_objects"]
    tasks += _quality_and_preprocess(spec, source, ingest_ids)
    tasks += _train_evaluate_promote(spec)
    return {
        "dag": {
            "dag_id": training_dag_id(spec.pipeline),
            "description": (spec.description or f"mlops-ops pipeline {spec.pipeline}")[:200],
            "schedule": spec.schedule,
            "trigger_assets": _trigger_assets(spec),
            "start_date": spec.start_date.isoformat(),
            "catchup": False,
            "max_active_runs": 1,  # one writer per lake dataset: runs of a pipeline never interleave
            "tags": sorted({"mlops-ops", spec.pipeline, *spec.tags}),
            "owner": ",".join(spec.owners),
            "retries": spec.retries,
            "doc_md": _doc_md(spec, source),
            "train_params": spec.train is not None,
        },
        "tasks": tasks,
    }


def _trigger_assets(spec: PipelineSpec) -> list[dict[str, Any]]:
    """Assets besides the schedule that start a (re)training run: drift signals, control-topic requests."""
    if spec.train is None:
        return []
    assets: list[dict[str, Any]] = []
    retrain = spec.retrain
    if spec.drift is not None and (retrain is None or retrain.on_drift):
        assets.append({"name": drift_asset_name(spec.pipeline)})
    if retrain is not None and retrain.control_topic:
        assets.append({"name": control_asset_name(spec.pipeline),
                       "watcher": {"pipeline": spec.pipeline, "topic": retrain.control_topic,
                                   "kafka_config_id": retrain.control_conn_id}})  # fmt: skip
    return assets


def _ingest(spec: PipelineSpec) -> list[dict[str, Any]]:
    tasks: list[dict[str, Any]] = []
    kafka = spec.source.kafka if spec.source else None
    if kafka is not None:
        tasks.append(
            {
                "operator": "kafka_to_lake",
                "outlets": [raw_asset_name(spec.pipeline)],
                "kwargs": {
                    "task_id": "ingest_kafka",
                    "topics": list(kafka.topics),
                    "pipeline": spec.pipeline,
                    "dataset": "raw",
                    **({"lake": spec.lake} if spec.lake else {}),
                    "kafka_config_id": kafka.conn_id,
                    "group_id": kafka.group_id,
                    "deserializer": kafka.deserializer,
                    "schema": dict(kafka.schema_) if kafka.schema_ else None,
                    "max_messages": kafka.max_messages,
                    "rows_per_file": kafka.rows_per_file,
                    "poll_timeout_s": kafka.poll_timeout_s,
                    "max_bad_share": kafka.dead_letter.max_bad_share,
                    "dead_letter_topic": kafka.dead_letter.topic,
                },
            }
        )
    s3 = spec.source.s3 if spec.source else None
    if s3 is not None:
        common = {"bucket": s3.bucket, "prefix": s3.prefix, "glob": s3.glob, "pipeline": spec.pipeline,
                  "dataset": "raw", "aws_conn_id": s3.conn_id, "on_change": s3.on_change,
                  **({"lake": spec.lake} if spec.lake else {})}  # fmt: skip
        upstream = []
        if s3.wait_for_new_s:
            tasks.append(
                {
                    "operator": "new_s3_objects",
                    "outlets": [],
                    "kwargs": {
                        "task_id": "wait_for_s3_objects",
                        **common,
                        "timeout": s3.wait_for_new_s,
                        "soft_fail": True,
                    },
                }
            )
            upstream = ["wait_for_s3_objects"]
        tasks.append(
            {
                "operator": "s3_to_lake",
                "outlets": [raw_asset_name(spec.pipeline)],
                "upstream": upstream,
                "kwargs": {"task_id": "ingest_s3", **common, "format": s3.format,
                           "schema": dict(s3.schema_) if s3.schema_ else None, "rows_per_file": s3.rows_per_file},
            }
        )  # fmt: skip
    return tasks


def plan_drift_dag(spec: PipelineSpec, *, source: str | Path = "<spec>") -> dict[str, Any]:
    """The pipeline's drift DAG: pull new data in (ingest, gate), check it, signal retraining on drift."""
    source = str(source)
    check_supported(spec, source)
    drift, pre, train = spec.drift, spec.preprocess, spec.train
    if drift is None or pre is None or train is None:
        raise ValueError("a drift DAG needs the drift, preprocess and train stages")
    tasks = _ingest(spec)
    ingest_ids = [t["kwargs"]["task_id"] for t in tasks if t["operator"] != "new_s3_objects"]
    upstream = ingest_ids
    lake = {"lake": spec.lake} if spec.lake else {}
    if spec.quality is not None:
        tasks.append(_quality_gate(spec, ingest_ids))
        upstream = ["quality_gate"]
    model_name = spec.promote.model_name if spec.promote else spec.pipeline
    sql = _sql_path(pre.sql, source)
    tasks.append({"operator": "drift_check", "outlets": [], "upstream": upstream,
                  "kwargs": {"task_id": "drift_check", "pipeline": spec.pipeline, "model_name": model_name,
                             "key_column": pre.key_column, "target": train.target, "transform": pre.transform,
                             "sql": sql, "transform_params": dict(pre.params), "window": drift.window,
                             "drift_share": drift.drift_share, "column_threshold": drift.column_threshold,
                             "max_rows": drift.max_rows, **lake,
                             # data committed by earlier runs may still be unchecked when nothing new arrived
                             "trigger_rule": "none_failed"}})  # fmt: skip
    tasks.append({"operator": "drift_signal", "outlets": [drift_asset_name(spec.pipeline)],
                  "inlets": [drift_asset_name(spec.pipeline)], "upstream": ["drift_check"],
                  "kwargs": {"task_id": "drift_signal", "cooldown": drift.cooldown, "retries": 0}})  # fmt: skip
    return {
        "dag": {
            "dag_id": drift_dag_id(spec.pipeline),
            "description": f"Drift monitoring of {spec.pipeline}: new data vs the champion's training data"[:200],
            "schedule": drift.schedule,
            "trigger_assets": [],
            "start_date": spec.start_date.isoformat(),
            "catchup": False,
            "max_active_runs": 1,
            "tags": sorted({"mlops-ops", "drift", spec.pipeline, *spec.tags}),
            "owner": ",".join(spec.owners),
            "retries": spec.retries,
            "doc_md": _drift_doc_md(spec, source),
            "train_params": False,
        },
        "tasks": tasks,
    }


def _drift_doc_md(spec: PipelineSpec, source: str) -> str:
    drift = spec.drift
    assert drift is not None
    model = spec.promote.model_name if spec.promote else spec.pipeline
    return "\n".join([
        f"# {spec.pipeline}: drift monitoring", "",
        f"Compares the data that arrived ({drift.window}) with the data `{model}@champion` was trained on "
        "(found through its MLflow lineage), with Evidently: per-column data drift, prediction drift, target drift.",
        "", f"*Spec:* `{source}`", "",
        f"Drift when at least {drift.drift_share:.0%} of the columns drifted, the predictions drifted, or the "
        f"schema changed. Then `drift_signal` updates Asset `{drift_asset_name(spec.pipeline)}` and "
        f"`{training_dag_id(spec.pipeline)}` retrains, at most once per {drift.cooldown}.",
    ])  # fmt: skip


def _sql_path(sql: str | None, source: str) -> str | None:
    """A relative ``.sql`` file is relative to the spec file."""
    if sql is not None and sql.strip().endswith(".sql") and not Path(sql.strip()).is_absolute():
        return str(Path(source).parent / sql.strip())
    return sql


def _quality_and_preprocess(spec: PipelineSpec, source: str, ingest_ids: list[str]) -> list[dict[str, Any]]:
    """Gate the batches ingested in this run, then rebuild the feature table from admitted data.

    ``none_failed_min_one_success``: with two sources, one having nothing new must not
    hold back the other; a failed gate still stops everything after it.
    """
    tasks: list[dict[str, Any]] = []
    lake = {"lake": spec.lake} if spec.lake else {}
    upstream = ingest_ids
    if spec.quality is not None:
        tasks.append(_quality_gate(spec, ingest_ids))
        upstream = ["quality_gate"]
    pre = spec.preprocess
    if pre is not None:
        sql = _sql_path(pre.sql, source)
        tasks.append({"operator": "spark_preprocess", "outlets": [features_asset_name(spec.pipeline)],
                      "upstream": upstream,
                      "kwargs": {"task_id": "preprocess", "pipeline": spec.pipeline, "key_column": pre.key_column,
                                 "transform": pre.transform, "sql": sql, "transform_params": dict(pre.params),
                                 "splits": pre.splits.model_dump(), "ingest_task_ids": ingest_ids, **lake,
                                 # all upstream skipped = no new data: a retraining run still rebuilds
                                 **({"trigger_rule": "none_failed"} if upstream else {})}})  # fmt: skip
    return tasks


def _quality_gate(spec: PipelineSpec, ingest_ids: list[str]) -> dict[str, Any]:
    """The gate over the batches this run ingested; shared by the training and the drift DAG."""
    assert spec.quality is not None
    lake = {"lake": spec.lake} if spec.lake else {}
    return {"operator": "quality_gate", "outlets": [], "upstream": ingest_ids,
            "kwargs": {"task_id": "quality_gate", "pipeline": spec.pipeline, "suite": spec.quality.suite,
                       "engine": spec.quality.engine, "ingest_task_ids": ingest_ids, **lake,
                       "trigger_rule": "none_failed_min_one_success"}}  # fmt: skip


def _train_evaluate_promote(spec: PipelineSpec) -> list[dict[str, Any]]:
    train = spec.train
    if train is None:
        return []
    from mlops_ops import __version__

    model_name = spec.promote.model_name if spec.promote else spec.pipeline
    container = None
    if train.executor != "local":
        container = {"image": train.image or f"mlops-ops-trainer:{__version__}",
                     "resources": train.resources.model_dump(), "node_selector": dict(train.node_selector),
                     "tolerations": [dict(t) for t in train.tolerations]}  # fmt: skip
    tasks: list[dict[str, Any]] = [
        {"operator": "train_model", "outlets": [], "upstream": ["preprocess"],
         "kwargs": {"task_id": "train", "pipeline": spec.pipeline, "model_name": model_name, "target": train.target,
                    "task": train.task, "trainer": train.trainer, "trainer_params": dict(train.params),
                    "run_in": train.executor, "container": container}}
    ]  # fmt: skip
    ev = spec.evaluate
    if ev is not None:
        tasks.append(
            {"operator": "evaluate_model", "outlets": [], "upstream": ["train"],
             "kwargs": {"task_id": "evaluate", "model_name": model_name, "target": train.target, "task": train.task,
                        "metrics": list(ev.metrics),
                        "thresholds": {k: v.model_dump() for k, v in ev.thresholds.items()},
                        "max_regression": dict(ev.max_regression), "slice_column": ev.slice_column}}
        )  # fmt: skip
    if spec.promote is not None:
        tasks.append(
            {"operator": "promote_model", "outlets": [model_asset_name(spec.pipeline)], "upstream": ["evaluate"],
             "kwargs": {"task_id": "promote", "model_name": model_name}}
        )  # fmt: skip
    return tasks


def _operator_class(name: str) -> type:
    """Only operators of this library can appear in a plan; names map to classes here, not via import paths."""
    if name == "kafka_to_lake":
        from mlops_ops.operators.kafka import KafkaToLakeOperator

        return KafkaToLakeOperator
    if name == "s3_to_lake":
        from mlops_ops.operators.s3 import S3ToLakeOperator

        return S3ToLakeOperator
    if name == "new_s3_objects":
        from mlops_ops.sensors.s3 import NewS3ObjectsSensor

        return NewS3ObjectsSensor
    if name == "train_model":
        from mlops_ops.operators.train import TrainModelOperator

        return TrainModelOperator
    if name in ("evaluate_model", "promote_model"):
        from mlops_ops.operators import evaluate

        return evaluate.EvaluateModelOperator if name == "evaluate_model" else evaluate.PromoteModelOperator
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


def _params(train: bool) -> dict[str, Any] | None:
    """Trigger-time settings, validated by Airflow (JSON schema): a bad ``conf`` is refused, the UI shows a form."""
    if not train:
        return None
    from airflow.sdk import Param

    from mlops_ops.operators.train import PARAMS_KEY

    return {
        PARAMS_KEY: Param({}, type="object", title="Hyper-parameters",
                          description="JSON object overriding the spec's train.params for this run, e.g. "
                                      '{"epochs": 4, "lr": 0.001}'),
        # ["null", "string"]: optional in the trigger form (a plain string is required there, "" counts as missing)
        "reason": Param(None, type=["null", "string"], maxLength=500, title="Reason",
                        description="why this run was started (kept on the run for the audit trail)"),
    }  # fmt: skip


def _schedule(cron: str | None, trigger_assets: list[dict[str, Any]]) -> Any:
    """The spec's schedule, OR-ed with the trigger Assets (drift signal, control-topic watcher) when there are any."""
    if not trigger_assets:
        return cron
    from airflow.sdk import AssetAny, AssetOrTimeSchedule, AssetWatcher, CronTriggerTimetable

    from mlops_ops.triggers.control import ControlTopicTrigger

    assets = []
    for entry in trigger_assets:
        watchers = []
        if entry.get("watcher"):
            name = entry["name"].replace(".", "_") + "_watcher"
            watchers.append(AssetWatcher(name=name, trigger=ControlTopicTrigger(**entry["watcher"])))
        assets.append(Asset(name=entry["name"], group="mlops-ops", watchers=watchers))
    condition = assets[0] if len(assets) == 1 else AssetAny(*assets)
    if cron is None:
        return condition
    return AssetOrTimeSchedule(timetable=CronTriggerTimetable(cron, timezone="UTC"), assets=condition)


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
        params=_params(d.get("train_params", False)),
    )
    with dag:
        built: dict[str, Any] = {}
        for task in plan["tasks"]:
            outlets = [Asset(name=name, group="mlops-ops") for name in task["outlets"]]
            inlets = [Asset(name=name, group="mlops-ops") for name in task.get("inlets", [])]
            op = _operator_class(task["operator"])(**task["kwargs"], outlets=outlets, inlets=inlets)
            for upstream in task.get("upstream", []):
                built[upstream] >> op
            built[op.task_id] = op
    return dag


def plan_dags(spec: PipelineSpec, *, source: str | Path = "<spec>") -> list[dict[str, Any]]:
    """Plans of every DAG a spec describes: the training DAG, and the drift DAG when the spec has a drift stage."""
    plans = [plan_training_dag(spec, source=source)]
    if spec.drift is not None:
        plans.append(plan_drift_dag(spec, source=source))
    return plans


def build_training_dag(spec: PipelineSpec, *, source: str | Path = "<spec>") -> DAG:
    return dag_from_plan(plan_training_dag(spec, source=source))


def build_dags(spec: PipelineSpec, *, source: str | Path = "<spec>") -> list[DAG]:
    """Every DAG a spec describes."""
    return [dag_from_plan(plan) for plan in plan_dags(spec, source=source)]
