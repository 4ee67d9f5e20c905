"""One row per pipeline for the plugin's overview page, from Airflow's metadata and MLflow.

Airflow side (the API server's own models, the ones its REST API reads; no second
database): the training DAG's last run, the quality gate's last verdict, the drift
checks' and promotions' results (their XCom return values). MLflow side: the model's
``champion`` alias and the evaluated metric of each version. Either side being down
shows in the row (``errors``) instead of failing the page.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from mlops_ops.naming import (
    DOCS_XCOM_KEY,
    DRIFT_CHECK_TASK,
    QUALITY_GATE_TASK,
    QUALITY_XCOM_KEY,
    TRAINING_SUFFIX,
    drift_dag_id,
    ingest_dag_id,
    pipeline_of_dag_id,
)

HISTORY = 30  # points per chart


@dataclass
class Point:
    at: str
    value: float
    label: str = ""


@dataclass
class PipelineRow:
    pipeline: str
    training_dag_id: str
    drift_dag_id: str
    model_name: str | None = None
    key_metric: str | None = None
    champion_version: str | None = None
    champion_metric: float | None = None
    last_run: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    drift: dict[str, Any] | None = None
    champion_history: list[Point] = field(default_factory=list)
    drift_history: list[Point] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def pipeline_dag_ids(session: Any) -> list[str]:
    """Training DAG ids of the factory-built pipelines Airflow knows about (not stale)."""
    from airflow.models.dag import DagModel
    from sqlalchemy import select

    rows = session.scalars(select(DagModel.dag_id).where(DagModel.is_stale.is_(False))).all()
    return sorted(d for d in rows if d.endswith(TRAINING_SUFFIX) and pipeline_of_dag_id(d))


def _xcoms(
    session: Any, dag_id: str, task_id: str, key: str = "return_value", limit: int = HISTORY, run_id: str | None = None
) -> list[Any]:
    """``(timestamp, run_id, value)`` of a task's XCom (in one run, or any), newest first."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    stmt = (
        select(XComModel.timestamp, XComModel.run_id, XComModel.value)
        .where(XComModel.dag_id == dag_id, XComModel.task_id == task_id, XComModel.key == key)
        .order_by(XComModel.timestamp.desc())
        .limit(limit)
    )
    if run_id is not None:
        stmt = stmt.where(XComModel.run_id == run_id)
    return [(ts, run_id, XComModel.deserialize_value(_Raw(value))) for ts, run_id, value in session.execute(stmt)]


def _run_value(session: Any, dag_id: str, task_id: str, key: str, run_id: str) -> Any:
    rows = _xcoms(session, dag_id, task_id, key, limit=1, run_id=run_id)
    return rows[0][2] if rows else None


class _Raw:
    """What ``XComModel.deserialize_value`` expects: an object with ``.value``."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _last_run(session: Any, dag_id: str) -> dict[str, Any] | None:
    from airflow.models.dagrun import DagRun
    from sqlalchemy import select

    run = session.scalars(
        select(DagRun).where(DagRun.dag_id == dag_id).order_by(DagRun.run_after.desc()).limit(1)
    ).first()
    if run is None:
        return None
    return {"run_id": run.run_id, "state": str(run.state), "run_type": str(run.run_type),
            "start_date": _iso(run.start_date), "end_date": _iso(run.end_date)}  # fmt: skip


def _gate(session: Any, dag_id: str) -> dict[str, Any] | None:
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy import select

    ti = session.scalars(
        select(TaskInstance)
        .where(
            TaskInstance.dag_id == dag_id,
            TaskInstance.task_id == QUALITY_GATE_TASK,
            TaskInstance.state.in_(("success", "failed")),
        )
        .order_by(TaskInstance.end_date.desc())
        .limit(1)
    ).first()
    if ti is None:
        return None
    batches = _run_value(session, dag_id, QUALITY_GATE_TASK, QUALITY_XCOM_KEY, ti.run_id)
    docs = _run_value(session, dag_id, QUALITY_GATE_TASK, DOCS_XCOM_KEY, ti.run_id)
    summaries = list(batches.values()) if isinstance(batches, dict) else []
    return {"state": str(ti.state), "run_id": ti.run_id, "end_date": _iso(ti.end_date), "batches": len(summaries),
            "failed_batches": sum(1 for s in summaries if not s.get("passed")),
            "failed_expectations": sum(int(s.get("blocking_count", 0)) for s in summaries),
            "data_docs_url": docs}  # fmt: skip


def airflow_side(session: Any, training_id: str) -> PipelineRow:
    pipeline = pipeline_of_dag_id(training_id) or training_id
    row = PipelineRow(pipeline=pipeline, training_dag_id=training_id, drift_dag_id=drift_dag_id(pipeline))
    row.last_run = _last_run(session, training_id)
    row.gate = _gate(session, ingest_dag_id(pipeline))
    checks = [(ts, v) for ts, _, v in _xcoms(session, row.drift_dag_id, DRIFT_CHECK_TASK) if isinstance(v, dict)]
    if checks:
        latest = checks[0][1]
        row.drift = {key: latest.get(key) for key in ("drift_share", "drifted", "drifted_columns", "report_url",
                                                        "champion_version")}  # fmt: skip
        row.drift["checked_at"] = _iso(checks[0][0])
    row.drift_history = [Point(_iso(ts) or "", float(v.get("drift_share") or 0.0), "drift" if v.get("drifted") else "")
                         for ts, v in reversed(checks)]  # fmt: skip
    for task_id in ("promote", "train"):
        named = [v for _, _, v in _xcoms(session, training_id, task_id, limit=1) if isinstance(v, dict)]
        if named and named[0].get("model_name"):
            row.model_name = str(named[0]["model_name"])
            break
    evaluations = [v for _, _, v in _xcoms(session, training_id, "evaluate", limit=200) if isinstance(v, dict)]
    if evaluations and evaluations[0].get("metrics"):
        row.key_metric = evaluations[0].get("key_metric") or next(iter(evaluations[0]["metrics"]))
    changes = [
        (ts, v) for ts, _, v in _xcoms(session, training_id, "promote") if isinstance(v, dict) and v.get("changed")
    ]
    by_version = {str(v.get("version")): v.get("metrics") or {} for v in reversed(evaluations)}
    for ts, change in reversed(changes):
        value = by_version.get(str(change.get("champion")), {}).get(row.key_metric or "")
        if value is not None:
            row.champion_history.append(Point(_iso(ts) or "", float(value), f"v{change.get('champion')}"))
    return row


def mlflow_client(conn_id: str = "mlflow_default") -> Any:
    """A client that fails fast: a page must not wait minutes for MLflow's retries."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    from mlops_ops.hooks.mlflow import MlflowHook

    return MlflowHook(conn_id).scoped_client()  # the API server: no password in its environment


def add_champion(row: PipelineRow, client: Any) -> None:
    """Fill the champion's version and key metric from the registry; record why not in ``errors``."""
    from mlops_ops.training.evaluation import CHAMPION

    if row.model_name is None:
        return
    try:
        version = client.get_model_version_by_alias(row.model_name, CHAMPION)
    except Exception as err:  # noqa: BLE001 - no alias yet, or MLflow down: the row says which
        text = str(err)
        if "not found" not in text.lower() and "RESOURCE_DOES_NOT_EXIST" not in text:
            row.errors.append(f"MLflow: {text.splitlines()[0][:200]}")
        return
    row.champion_version = str(version.version)
    if row.key_metric and version.run_id:
        try:
            metrics = client.get_run(version.run_id).data.metrics
        except Exception as err:  # noqa: BLE001
            row.errors.append(f"MLflow: {str(err).splitlines()[0][:200]}")
            return
        names = [k for k in metrics if k == row.key_metric or k.endswith("_" + row.key_metric)]
        names.sort(key=lambda k: (not k.startswith("test_"), k))
        row.champion_metric = float(metrics[names[0]]) if names else None


def collect(dag_ids: set[str] | None, conn_id: str = "mlflow_default") -> list[PipelineRow]:
    """Rows for the pipelines whose training DAG is in ``dag_ids`` (``None``: all)."""
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = [airflow_side(session, d) for d in pipeline_dag_ids(session) if dag_ids is None or d in dag_ids]
    if any(r.model_name for r in rows):
        try:
            client = mlflow_client(conn_id)
        except Exception as err:  # noqa: BLE001 - e.g. the connection is not defined
            for row in rows:
                row.errors.append(f"MLflow: {err}")
            return rows
        for row in rows:
            add_champion(row, client)
    return rows
