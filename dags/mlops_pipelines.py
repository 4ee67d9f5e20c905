"""Airflow DAG file: every spec in dags/pipelines/*.yaml becomes DAGs (built by mlops-ops)."""

from __future__ import annotations

from pathlib import Path

from mlops_ops.factories.loader import load_pipelines

load_pipelines(globals(), Path(__file__).parent / "pipelines")
