"""The Markdown each generated DAG shows in the Airflow UI (its ``doc_md``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops_ops import naming

if TYPE_CHECKING:
    from mlops_ops.spec import PipelineSpec


def _table(rows: list[str]) -> list[str]:
    return ["| stage | settings |", "|---|---|", *rows]


def ingest_doc(spec: PipelineSpec, source: str) -> str:
    assert spec.source is not None
    p = spec.pipeline
    rows = []
    s3, kafka = spec.source.s3, spec.source.kafka
    if s3 is not None:
        rows.append(
            f"| source.s3 | s3://{s3.bucket}/{s3.prefix}{s3.glob} ({s3.format}); changed objects: {s3.on_change}"
            f"{'; new objects start a run' if s3.watch else ''} |"
        )
    if kafka is not None:
        schema = ", ".join(f"{k}: {v}" for k, v in (kafka.schema_ or {}).items()) or "inferred"
        rows.append(
            f"| source.kafka | topics {', '.join(kafka.topics)}; schema {schema}; max bad share "
            f"{kafka.dead_letter.max_bad_share:.0%}; retention gap: {kafka.on_gap}"
            f"{'; new messages start a run' if kafka.watch else ''} |"
        )
    if spec.quality is not None:
        rows.append(
            f"| quality | GX suite `{spec.quality.suite}` ({spec.quality.engine}) audits each staged batch; "
            f"failures go to `{p}.raw_quarantine` |"
        )
    return "\n".join(
        [
            f"# {p}: ingest",
            "",
            f"The only writer of the Iceberg table `{p}.raw`. Each source stages a batch on "
            f"`{p}.raw@audit_<source>`; "
            + (
                "the quality gate publishes it to `main` or quarantines it. "
                if spec.quality
                else "it is published to `main` at once. "
            )
            + f"Runs of `{naming.training_dag_id(p)}` "
            "start when a batch is published.",
            "",
            f"*Spec:* `{source}`",
            "",
            *_table(rows),
        ]
    )


def training_doc(spec: PipelineSpec, source: str) -> str:
    p = spec.pipeline
    rows = []
    if spec.preprocess is not None:
        pre = spec.preprocess
        rows.append(
            f"| preprocess | {pre.transform or pre.sql}; splits by hash of `{pre.key_column}`; "
            f"{'full rebuild' if pre.full_rebuild else 'incremental'} into `{p}.features` |"
        )
    if spec.train is not None:
        t = spec.train
        rows.append(f"| train | {t.trainer} ({t.task}, target `{t.target}`) on {t.executor}; GPUs {t.resources.gpus} |")
    if spec.evaluate is not None:
        rows.append(f"| evaluate | {', '.join(spec.evaluate.metrics)} vs the champion on the test split |")
    if spec.promote is not None:
        approval = spec.promote.approval
        if approval is not None and approval.required:
            who = ", ".join(approval.approvers) or "anyone allowed to act on this DAG"
            rows.append(
                f"| approve | a person ({who}) approves the blessed challenger in Required Actions, with the "
                f"evidence; no answer within {approval.timeout}: rejected |"
            )
        rows.append(
            f"| promote | `{spec.promote.model_name}@champion` when blessed"
            f"{' and approved' if approval is not None and approval.required else ''}; `previous` keeps the "
            "last one |"
        )
    if spec.drift is not None:
        rows.append(
            f"| drift | `{naming.drift_dag_id(p)}` ({spec.drift.schedule}); drift retrains this DAG, "
            f"cool-down {spec.drift.cooldown} |"
        )
    if spec.retrain is not None and spec.retrain.control_topic:
        rows.append(
            f'| retrain | a message `{{"pipeline": "{p}", "reason": ...}}` on Kafka topic '
            f"`{spec.retrain.control_topic}` starts a run, at most once per {spec.retrain.control_cooldown} |"
        )
    return "\n".join(
        [
            f"# {p}",
            "",
            spec.description or "ML pipeline built by mlops-ops.",
            "",
            f"Reads pinned snapshots of `{p}.raw` (published by `{naming.ingest_dag_id(p)}`); never ingests.",
            "",
            f"*Spec:* `{source}`",
            "",
            *_table(rows),
        ]
    )


def drift_doc(spec: PipelineSpec, source: str) -> str:
    drift = spec.drift
    assert drift is not None
    p = spec.pipeline
    model = spec.promote.model_name if spec.promote else p
    return "\n".join(
        [
            f"# {p}: drift monitoring",
            "",
            f"Compares the data published to `{p}.raw` ({drift.window}) with the data `{model}@champion` was trained "
            "on (its features snapshot, by time travel), with Evidently: per-column data drift, prediction drift, "
            f"target drift. Each check is a row of `{p}.drift_checks`.",
            "",
            f"*Spec:* `{source}`",
            "",
            f"Drift when at least {drift.drift_share:.0%} of the columns drifted, the predictions drifted, or the "
            f"schema changed. Then `drift_signal` updates Asset `{naming.drift_asset_name(p)}` and "
            f"`{naming.training_dag_id(p)}` retrains, at most once per {drift.cooldown}.",
        ]
    )
