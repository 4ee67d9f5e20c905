from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from airflow.sdk.api.datamodels._generated import DagRunType

from mlops_ops.operators.base import run_type


def test_run_type_is_the_value_airflow_names() -> None:
    # the task SDK's enum prints as "DagRunType.BACKFILL": comparing its str() with "backfill" never matches
    assert str(DagRunType.BACKFILL) != "backfill"
    context: Any = {"dag_run": SimpleNamespace(run_type=DagRunType.BACKFILL)}
    assert run_type(context) == "backfill"
    assert run_type({"dag_run": SimpleNamespace(run_type="manual")}) == "manual"  # type: ignore[typeddict-item]
    assert run_type({}) == ""  # type: ignore[typeddict-item]
