"""``SparkPreprocessOperator``: admitted raw data → feature table with deterministic splits."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_ops.operators.kafka import LAKE_TEMPLATE
from mlops_ops.ui.links import LakeManifestLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


class SparkPreprocessOperator(BaseOperator):
    """Run a user transform over the pipeline's admitted raw data and publish a feature table.

    The transform is ``module:function`` called as ``function(df, spark, **params)``
    returning a DataFrame, or ``sql`` (a ``.sql`` file or a query) over the view ``raw``
    with ``:name`` parameters. Rows go to train/validation/test by a hash of
    ``key_column``. Output: ``<lake>/<pipeline>/<output_dataset>/snapshots/run=<key>/``
    plus a manifest; returns ``{"manifest_uri", "rows", "run_key", "reused"}``. No input
    rows skips this task and its downstream.

    :param spark_conn_id: no such connection means a local session (see :mod:`mlops_ops.hooks.spark`).
    """

    template_fields: Sequence[str] = ("pipeline", "lake", "input_dataset", "output_dataset", "transform_params")
    template_fields_renderers = {"transform_params": "json"}
    operator_extra_links = (LakeManifestLink(),)
    ui_color = "#fdf0e0"

    def __init__(
        self,
        *,
        pipeline: str,
        key_column: str,
        transform: str | None = None,
        sql: str | None = None,
        transform_params: Mapping[str, Any] | None = None,
        splits: Mapping[str, float] | None = None,
        input_dataset: str = "raw",
        output_dataset: str = "features",
        lake: str = LAKE_TEMPLATE,
        spark_conn_id: str = "spark_default",
        aws_conn_id: str | None = "aws_default",
        ingest_task_ids: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.ingest_task_ids = list(ingest_task_ids)
        self.pipeline = pipeline
        self.key_column = key_column
        self.transform = transform
        self.sql = sql
        self.transform_params = dict(transform_params or {})
        self.splits = dict(splits) if splits else None
        self.input_dataset = input_dataset
        self.output_dataset = output_dataset
        self.lake = lake
        self.spark_conn_id = spark_conn_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops_ops.exceptions import EmptyInputError
        from mlops_ops.hooks.spark import SparkHook
        from mlops_ops.lake.features import FeatureBuild, build_features
        from mlops_ops.lake.store import Dataset

        if (self.transform is None) == (self.sql is None):
            raise ValueError("give exactly one of transform (module:function) or sql")
        if self.ingest_task_ids and context["dag_run"].run_type == "scheduled":
            ingested = context["ti"].xcom_pull(task_ids=self.ingest_task_ids)
            if not any(ingested if isinstance(ingested, list) else [ingested]):
                raise AirflowSkipException(
                    "no new data in this scheduled run: nothing to rebuild or retrain "
                    "(runs started by drift, a control message or by hand rebuild from the lake)"
                )
        hook = SparkHook(self.spark_conn_id, app_name=f"mlops-ops-{self.pipeline}")
        options = hook.session_options()
        raw = Dataset.at(self.lake, self.pipeline, self.input_dataset, conn_id=self.aws_conn_id)
        features = Dataset.at(self.lake, self.pipeline, self.output_dataset, conn_id=self.aws_conn_id)
        build = FeatureBuild(self.key_column, self.transform, self.sql, self.transform_params, self.splits)
        try:
            result = build_features(hook.get_conn(), raw, features, build, local_session=options.is_local,
                                    conn_id=self.aws_conn_id)  # fmt: skip
        except EmptyInputError as err:
            log.info("skipping preprocessing and everything downstream: %s", err)
            raise AirflowSkipException(str(err)) from err
        summary: dict[str, Any] = {"manifest_uri": result.manifest_uri, "rows": result.rows, "run_key": result.run_key,
                   "reused": result.reused}  # fmt: skip
        log.info("%s feature table %s: %s", "reused" if result.reused else "built", result.manifest_uri, result.rows)
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = summary
        return summary
