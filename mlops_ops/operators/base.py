"""What every lake-facing operator shares: the pipeline, the Iceberg catalog connection, the lake folder for
reports and Data Docs, and the S3 connection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

# No default folder: an unset Variable renders empty, and the first write fails naming the Variable to set.
LAKE_TEMPLATE = "{{ var.value.get('mlops_ops_lake', '') }}"


class LakeOperator(BaseOperator):
    """:param pipeline: the pipeline; the namespace of its tables in the catalog.
    :param iceberg_conn_id: the catalog's connection (:class:`~mlops_ops.hooks.iceberg.IcebergCatalogHook`).
    :param lake: folder for files that are not tables (Data Docs, drift reports); default Variable ``mlops_ops_lake``.
    :param aws_conn_id: connection for S3 sources and the lake folder.
    """

    def __init__(
        self,
        *,
        pipeline: str,
        iceberg_conn_id: str = "iceberg_default",
        lake: str = LAKE_TEMPLATE,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.iceberg_conn_id = iceberg_conn_id
        self.lake = lake
        self.aws_conn_id = aws_conn_id

    def tables(self) -> Any:
        """The pipeline's tables (:class:`~mlops_ops.lake.tables.PipelineTables`)."""
        from mlops_ops.hooks.iceberg import IcebergCatalogHook
        from mlops_ops.lake.tables import PipelineTables

        return PipelineTables(IcebergCatalogHook(self.iceberg_conn_id).get_conn(), self.pipeline)


def run_type(context: Context) -> str:
    """The run's type as Airflow names it: ``manual``, ``scheduled``, ``backfill``, ``asset_triggered``, ...

    (The task SDK gives an enum whose ``str()`` is ``DagRunType.BACKFILL``, not its value.)"""
    value = getattr(context.get("dag_run"), "run_type", None)
    return str(getattr(value, "value", value) or "")


def replay_of(context: Context) -> str | None:
    """``MODEL@VERSION`` when the run replays a version (DAG Param ``replay_of``): such a run never promotes."""
    from mlops_ops.naming import REPLAY_PARAM

    value = (context.get("params") or {}).get(REPLAY_PARAM)
    return str(value) if value else None
