"""Airflow DAG file: every spec in dags/pipelines/*.yaml becomes DAGs (built by mlops-ops).

Invalid specs are skipped here, so one bad file never pauses the other pipelines;
``mlops_spec_errors.py`` beside this file reports them as an import error.
"""

from __future__ import annotations

from pathlib import Path

from mlops_ops.factories.loader import load_pipelines

load_pipelines(globals(), Path(__file__).parent / "pipelines", on_error="skip")
