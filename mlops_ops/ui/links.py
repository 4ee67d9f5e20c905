"""Operator extra links to MLflow and the lake.

Airflow 3 computes a link in the task process when the task ends (``finalize``) and stores
it in XCom; the UI only reads it. So these run with the task's connections: the MLflow UI
address comes from the task's MLflow connection (``extra.ui_url`` when the browser reaches
MLflow elsewhere than the workers do). A task that returned nothing gets no link ("").
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

from mlops_ops.naming import safe_link, snapshot_route

SNAPSHOT_PATH = re.compile(r"^(?P<table>[a-z][a-z0-9_]{0,62})/(?P<snapshot>-?[0-9]{1,20})$")


def task_result(ti_key: TaskInstanceKey) -> dict[str, Any]:
    """The task's return value when it is a dict (what the library's operators return), else ``{}``.

    Read as a sequence: a task that returned nothing (skipped) gives an empty list, where a single-value read would
    make Airflow's client log an error line for every link of every skipped task."""
    from airflow.sdk.execution_time.xcom import XCom

    values = XCom.get_all(key="return_value", dag_id=ti_key.dag_id, task_id=ti_key.task_id, run_id=ti_key.run_id)
    value = values[0] if isinstance(values, list) and len(values) == 1 else None
    return value if isinstance(value, dict) else {}


def _mlflow_ui(operator: BaseOperator) -> str:
    from mlops_ops.hooks.mlflow import MlflowHook

    return MlflowHook(getattr(operator, "mlflow_conn_id", MlflowHook.default_conn_name)).ui_url()


def run_url(ui: str, run_id: str) -> str:
    return f"{ui}/#/runs/{run_id}" if ui and run_id else ""


def model_version_url(ui: str, name: str, version: str) -> str:
    return f"{ui}/#/models/{quote(name, safe='')}/versions/{quote(version, safe='')}" if ui and name and version else ""


class MlflowRunLink(BaseOperatorLink):
    """The MLflow run the task logged to (``run_id`` or ``mlflow_run_id`` in its result)."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        result = task_result(ti_key)
        run_id = str(result.get("run_id") or result.get("mlflow_run_id") or "")
        return safe_link(run_url(_mlflow_ui(operator), run_id)) if run_id else ""


class ModelVersionLink(BaseOperatorLink):
    """The registry page of the version the task trained, evaluated or made champion."""

    name = "Model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        result = task_result(ti_key)
        name = str(result.get("model_name") or getattr(operator, "model_name", "") or "")
        version = str(result.get("champion") or result.get("version") or "")
        return safe_link(model_version_url(_mlflow_ui(operator), name, version)) if version else ""


class LakeSnapshotLink(BaseOperatorLink):
    """The lake snapshot the task committed (summary: positions, rows, files), served by the plugin."""

    name = "Lake snapshot"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        result = task_result(ti_key)
        table, snapshot = str(result.get("table") or ""), result.get("snapshot_id")
        pipeline, _, name = table.partition(".")
        return snapshot_route(pipeline, name, snapshot) if pipeline and name and snapshot is not None else ""
