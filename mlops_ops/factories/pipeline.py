"""Build Airflow DAGs from a :class:`~mlops_ops.spec.PipelineSpec`: the public entry points.

Spec → plans (:mod:`mlops_ops.factories.plan`), generated docs (:mod:`mlops_ops.factories.docs`),
plans → DAGs (:mod:`mlops_ops.factories.build`). Only stages whose operators exist are accepted; any other
stage in a spec is rejected with :class:`~mlops_ops.exceptions.StageNotSupportedError` rather than turned
into a placeholder task. Names (DAG ids, Assets, task ids) come from :mod:`mlops_ops.naming`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlops_ops.factories.build import dag_from_plan
from mlops_ops.factories.plan import SUPPORTED_STAGES, plan_dags

if TYPE_CHECKING:
    from airflow.sdk import DAG

    from mlops_ops.spec import PipelineSpec

__all__ = ["SUPPORTED_STAGES", "build_dags", "dag_from_plan", "plan_dags"]


def build_dags(spec: PipelineSpec, *, source: str | Path = "<spec>") -> list[DAG]:
    """Every DAG a spec describes: ``<pipeline>__ingest``, ``__training`` and ``__drift``."""
    return [dag_from_plan(plan) for plan in plan_dags(spec, source=source)]  # type: ignore[arg-type]
