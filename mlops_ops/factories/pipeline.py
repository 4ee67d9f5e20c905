"""Build Airflow DAGs from a :class:`~mlops_ops.spec.PipelineSpec`.

Only stages whose operators exist are accepted; any other stage in a spec is
rejected with :class:`~mlops_ops.exceptions.StageNotSupportedError` rather than
turned into a placeholder task.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from airflow.sdk import DAG, Asset

from mlops_ops.exceptions import StageNotSupportedError
from mlops_ops.spec import PipelineSpec

SUPPORTED_STAGES = ("source.kafka",)
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


def raw_asset(pipeline: str) -> Asset:
    """The Asset updated each time new raw data of ``pipeline`` lands in the lake."""
    return Asset(name=f"mlops_ops.{pipeline}.raw", group="mlops-ops")


def check_supported(spec: PipelineSpec, source: str) -> None:
    for stage in spec.stages():
        if stage not in SUPPORTED_STAGES:
            raise StageNotSupportedError(source, stage, list(SUPPORTED_STAGES))


def _doc_md(spec: PipelineSpec, source: str) -> str:
    kafka = spec.source.kafka if spec.source else None
    lines = [f"# {spec.pipeline}", "", spec.description or "ML pipeline built by mlops-ops.", "",
             f"*Spec:* `{source}`", "", "| stage | settings |", "|---|---|"]  # fmt: skip
    if kafka is not None:
        schema = ", ".join(f"{k}: {v}" for k, v in (kafka.schema_ or {}).items()) or "inferred"
        lines.append(
            f"| source.kafka | topics {', '.join(kafka.topics)}; schema {schema}; "
            f"max bad share {kafka.dead_letter.max_bad_share:.0%} |"
        )
    return "\n".join(lines)


def build_training_dag(spec: PipelineSpec, *, source: str | Path = "<spec>") -> DAG:
    """The pipeline's main DAG: ingest (and, as they are built, the later stages)."""
    source = str(source)
    check_supported(spec, source)
    from mlops_ops.operators.kafka import KafkaToLakeOperator

    dag = DAG(
        dag_id=training_dag_id(spec.pipeline),
        description=(spec.description or f"mlops-ops pipeline {spec.pipeline}")[:200],
        schedule=spec.schedule,
        start_date=spec.start_date,
        catchup=False,
        max_active_runs=1,  # one writer per lake dataset: runs of a pipeline never interleave
        tags=sorted({"mlops-ops", spec.pipeline, *spec.tags}),
        default_args={
            "owner": ",".join(spec.owners),
            "retries": spec.retries,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
        },
        doc_md=_doc_md(spec, source),
    )
    with dag:
        kafka = spec.source.kafka if spec.source else None
        if kafka is not None:
            KafkaToLakeOperator(
                task_id="ingest_kafka",
                topics=kafka.topics,
                pipeline=spec.pipeline,
                dataset="raw",
                **({"lake": spec.lake} if spec.lake else {}),
                kafka_config_id=kafka.conn_id,
                group_id=kafka.group_id,
                deserializer=kafka.deserializer,
                schema=dict(kafka.schema_) if kafka.schema_ else None,
                max_messages=kafka.max_messages,
                rows_per_file=kafka.rows_per_file,
                poll_timeout_s=kafka.poll_timeout_s,
                max_bad_share=kafka.dead_letter.max_bad_share,
                outlets=[raw_asset(spec.pipeline)],
            )
    return dag


def build_dags(spec: PipelineSpec, *, source: str | Path = "<spec>") -> list[DAG]:
    """Every DAG a spec describes (the drift DAG joins when its stage is built)."""
    return [build_training_dag(spec, source=source)]
