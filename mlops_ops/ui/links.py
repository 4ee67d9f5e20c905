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

LAKE_ROUTE = "/mlops-ops/lake"
MANIFEST_PATH = re.compile(r"^[A-Za-z0-9_.-]+/manifests/[^/\\]+\.json$")


def task_result(ti_key: TaskInstanceKey) -> dict[str, Any]:
    """The task's return value when it is a dict (what the library's operators return), else ``{}``."""
    from airflow.sdk.execution_time.xcom import XCom

    value = XCom.get_value(ti_key=ti_key, key="return_value")
    return value if isinstance(value, dict) else {}


def _mlflow_ui(operator: BaseOperator) -> str:
    from mlops_ops.hooks.mlflow import MlflowHook

    return MlflowHook(getattr(operator, "mlflow_conn_id", MlflowHook.default_conn_name)).ui_url()


def run_url(ui: str, run_id: str) -> str:
    return f"{ui}/#/runs/{run_id}" if ui and run_id else ""


def model_version_url(ui: str, name: str, version: str) -> str:
    return f"{ui}/#/models/{quote(name, safe='')}/versions/{quote(version, safe='')}" if ui and name and version else ""


def _plain(uri: str) -> str:
    """A local lake is written as ``/path`` in specs and ``file:///path`` by ObjectStoragePath: compare paths."""
    return uri[len("file://") :] if uri.startswith("file:///") else uri


def manifest_url(manifest_uri: str, lake: str, pipeline: str) -> str:
    """The plugin's URL of a manifest under ``<lake>/<pipeline>/``; "" for anything else."""
    prefix = f"{_plain(lake).rstrip('/')}/{pipeline}/"
    manifest_uri = _plain(manifest_uri)
    if not manifest_uri.startswith(prefix):
        return ""
    relative = manifest_uri[len(prefix) :]
    return f"{LAKE_ROUTE}/{pipeline}/{relative}" if MANIFEST_PATH.match(relative) else ""


class MlflowRunLink(BaseOperatorLink):
    """The MLflow run the task logged to (``run_id`` or ``mlflow_run_id`` in its result)."""

    name = "MLflow run"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        result = task_result(ti_key)
        run_id = str(result.get("run_id") or result.get("mlflow_run_id") or "")
        return run_url(_mlflow_ui(operator), run_id) if run_id else ""


class ModelVersionLink(BaseOperatorLink):
    """The registry page of the version the task trained, evaluated or made champion."""

    name = "Model version"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        result = task_result(ti_key)
        name = str(result.get("model_name") or getattr(operator, "model_name", "") or "")
        version = str(result.get("champion") or result.get("version") or "")
        return model_version_url(_mlflow_ui(operator), name, version) if version else ""


class LakeManifestLink(BaseOperatorLink):
    """The manifest the task wrote to the lake (files, rows, offsets), served by the plugin."""

    name = "Lake manifest"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        uri = str(task_result(ti_key).get("manifest_uri") or "")
        lake, pipeline = str(getattr(operator, "lake", "")), str(getattr(operator, "pipeline", ""))
        return manifest_url(uri, lake, pipeline) if uri and lake and pipeline else ""
