"""``SparkPreprocessOperator``: ``<pipeline>.raw`` → ``<pipeline>.features``, deterministic splits, incremental."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_ops.operators.base import LakeOperator
from mlops_ops.ui.links import LakeSnapshotLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


class SparkPreprocessOperator(LakeOperator):
    """Run a user transform over ``raw`` rows not processed yet (all of them for a full rebuild) and commit the
    result to ``features``.

    The transform is ``module:function`` called as ``function(df, spark, **params)`` returning a DataFrame,
    or ``sql`` (a ``.sql`` file or a query) over the view ``raw`` with ``:name`` parameters. Rows go to
    train/validation/test by a hash of ``key_column`` (column ``_split``). ``full_rebuild=True`` reprocesses
    all of ``raw`` each time (for aggregations over all history). Returns ``{"features", "table",
    "snapshot_id", "raw_snapshot", "rows", "mode", "reused"}``; no rows in ``raw`` skips this task and its
    downstream.

    :param spark_conn_id: no such connection means a local session (see :mod:`mlops_ops.hooks.spark`).
    """

    template_fields: Sequence[str] = ("pipeline", "transform_params")
    template_fields_renderers = {"transform_params": "json"}
    operator_extra_links = (LakeSnapshotLink(),)
    ui_color = "#fdf0e0"

    def __init__(
        self,
        *,
        key_column: str,
        transform: str | None = None,
        sql: str | None = None,
        transform_params: Mapping[str, Any] | None = None,
        splits: Mapping[str, float] | None = None,
        full_rebuild: bool = False,
        spark_conn_id: str = "spark_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.key_column = key_column
        self.transform = transform
        self.sql = sql
        self.transform_params = dict(transform_params or {})
        self.splits = dict(splits) if splits else None
        self.full_rebuild = full_rebuild
        self.spark_conn_id = spark_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops._compat import airflow_exception

        AirflowSkipException = airflow_exception("AirflowSkipException")

        from mlops_ops.exceptions import EmptyInputError
        from mlops_ops.hooks.spark import SparkHook
        from mlops_ops.lake.features import FeatureBuild, build_features

        if (self.transform is None) == (self.sql is None):
            raise ValueError("give exactly one of transform (module:function) or sql")
        hook = SparkHook(self.spark_conn_id, app_name=f"mlops-ops-{self.pipeline}")
        build = FeatureBuild(
            self.key_column, self.transform, self.sql, self.transform_params, self.splits, self.full_rebuild
        )
        tables = self.tables()
        try:
            result = build_features(hook.get_conn(), tables, build, local_session=hook.session_options().stages_locally)
        except EmptyInputError as err:
            log.info("skipping preprocessing and everything downstream: %s", err)
            raise AirflowSkipException(str(err)) from err
        summary: dict[str, Any] = {
            "features": result.ref,
            "table": tables.ident("features"),
            "snapshot_id": result.snapshot_id,
            "raw_snapshot": result.raw_snapshot,
            "rows": result.rows,
            "rows_in": result.rows_in,
            "mode": result.mode,
            "reused": result.reused,
        }
        log.info("features %s (%s, %d raw rows in): %s", result.ref, result.mode, result.rows_in, result.rows)
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = summary
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: ``raw`` at the snapshot the build read -> ``features`` at the snapshot it wrote."""
        from mlops_ops.lineage import openlineage as ol
        from mlops_ops.operators import openlineage as emit

        result = emit.task_result(task_instance)
        if not result.get("features"):
            return None
        return emit.as_operator_lineage(ol.features_build(result, catalog=emit.catalog(self.iceberg_conn_id)))
