"""Airflow DAG file without DAGs: an invalid spec in dags/pipelines/ shows up as this file's import error,
naming every bad spec file, line and field, while mlops_pipelines.py keeps the valid pipelines running."""

from __future__ import annotations

from pathlib import Path

from mlops_ops.factories.loader import report_spec_errors

report_spec_errors(Path(__file__).parent / "pipelines")
