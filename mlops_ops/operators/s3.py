"""``S3ToLakeOperator``: new or changed objects under an S3 prefix into a lake dataset, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from mlops_ops.operators.kafka import LAKE_TEMPLATE
from mlops_ops.ui.links import LakeManifestLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


class S3ToLakeOperator(BaseOperator):
    """Convert CSV, JSON-lines or Parquet objects to Parquet in the lake, streaming, with atomic publish.

    Objects are tracked by key and ETag: each is ingested once, and again after it
    changes when ``on_change="reingest"`` (its new rows then replace the old ones).
    An object that cannot be read or does not fit ``schema`` is quarantined with the
    reason; the others proceed. Returns ``{"manifest_uri", "rows", "objects",
    "quarantined"}``; nothing new skips the task.

    :param bucket: source bucket; ``prefix`` and ``glob`` (matched against the key below the prefix) select objects.
    :param format: ``csv`` (with a header row), ``jsonl`` or ``parquet``.
    :param schema: ``{column: string|int|float|bool|timestamp}``; columns are cast, other columns dropped.
    :param aws_conn_id: connection for the source and the lake (``endpoint_url`` in its extra for S3-compatible stores).
    """

    template_fields: Sequence[str] = ("bucket", "prefix", "glob", "lake", "pipeline", "dataset")
    operator_extra_links = (LakeManifestLink(),)
    ui_color = "#e8eef7"

    def __init__(
        self,
        *,
        bucket: str,
        format: Literal["csv", "jsonl", "parquet"],
        pipeline: str,
        prefix: str = "",
        glob: str = "*",
        dataset: str = "raw",
        lake: str = LAKE_TEMPLATE,
        aws_conn_id: str | None = "aws_default",
        schema: Mapping[str, str] | None = None,
        on_change: Literal["reingest", "ignore"] = "reingest",
        rows_per_file: int = 1_000_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket
        self.format = format
        self.pipeline = pipeline
        self.prefix = prefix
        self.glob = glob
        self.dataset = dataset
        self.lake = lake
        self.aws_conn_id = aws_conn_id
        self.schema = dict(schema) if schema else None
        self.on_change = on_change
        self.rows_per_file = rows_per_file

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops_ops import metrics
        from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings
        from mlops_ops.lake.store import Dataset, lake_path

        settings = S3BatchSettings(
            bucket=self.bucket,
            prefix=self.prefix,
            glob=self.glob,
            format=self.format,
            schema=self.schema,
            on_change=self.on_change,
            rows_per_file=self.rows_per_file,
        )
        client = S3Hook(aws_conn_id=self.aws_conn_id).get_conn()
        source = lake_path(f"s3://{self.bucket}", self.aws_conn_id)
        dataset = Dataset.at(self.lake, self.pipeline, self.dataset, conn_id=self.aws_conn_id)
        result = S3BatchIngest(client, source, dataset, settings).run()
        if result.manifest_uri is None:
            raise AirflowSkipException(f"no new or changed objects under s3://{self.bucket}/{self.prefix}")
        summary: dict[str, Any] = {
            "manifest_uri": result.manifest_uri,
            "rows": result.rows,
            "objects": len(result.objects),
            "quarantined": len(result.quarantined),
        }
        log.info("ingested %d rows from %d object(s) into %s", result.rows, len(result.objects), result.manifest_uri)
        metrics.incr(self.pipeline, "ingest_s3", "rows", result.rows)
        metrics.incr(self.pipeline, "ingest_s3", "objects_quarantined", len(result.quarantined))
        for outlet in self.outlets:
            extra: dict[str, Any] = {**summary, "keys": result.objects[:100]}
            context["outlet_events"][outlet].extra = extra
        return summary
