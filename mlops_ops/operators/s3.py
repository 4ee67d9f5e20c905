"""``S3ToLakeOperator``: new or changed objects under an S3 prefix into ``<pipeline>.raw``, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from mlops_ops.operators.base import LakeOperator
from mlops_ops.ui.links import LakeSnapshotLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


class S3ToLakeOperator(LakeOperator):
    """Convert CSV, JSON-lines or Parquet objects to rows of ``raw``, streaming; stage the batch on
    ``raw@audit_s3`` and, with ``publish=True`` (no quality gate), publish it.

    Objects are tracked by key and ETag: each is ingested once, and again after it changes when
    ``on_change="reingest"`` (its new rows then replace the old ones). Transient S3 errors are retried and
    then fail the task with nothing recorded; an object whose content cannot be read goes to
    ``raw_dead_letters`` with the reason. Returns ``{"batch", "snapshot_id", "published", "rows", "objects",
    "dead"}``; nothing new skips the task.

    :param bucket: source bucket; ``prefix`` and ``glob`` (matched against the key below the prefix) select objects.
    :param format: ``csv`` (with a header row), ``jsonl`` or ``parquet``.
    :param schema: ``{column: string|int|float|bool|timestamp}``; columns are cast, other columns dropped.
    :param source_conn_id: connection of the source bucket (``endpoint_url`` in its extra for S3-compatible stores).
    """

    template_fields: Sequence[str] = ("bucket", "prefix", "glob", "pipeline")
    operator_extra_links = (LakeSnapshotLink(),)
    ui_color = "#e8eef7"

    def __init__(
        self,
        *,
        bucket: str,
        format: Literal["csv", "jsonl", "parquet"],
        prefix: str = "",
        glob: str = "*",
        source_conn_id: str | None = "aws_default",
        schema: Mapping[str, str] | None = None,
        on_change: Literal["reingest", "ignore"] = "reingest",
        rows_per_file: int = 1_000_000,
        publish: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bucket = bucket
        self.format = format
        self.prefix = prefix
        self.glob = glob
        self.source_conn_id = source_conn_id
        self.schema = dict(schema) if schema else None
        self.on_change = on_change
        self.rows_per_file = rows_per_file
        self.publish = publish

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from mlops_ops._compat import airflow_exception

        AirflowSkipException = airflow_exception("AirflowSkipException")

        from mlops_ops import metrics
        from mlops_ops.exceptions import LakeWriterError
        from mlops_ops.lake import batches
        from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings, batch_objects

        settings = S3BatchSettings(
            bucket=self.bucket,
            prefix=self.prefix,
            glob=self.glob,
            format=self.format,
            schema=self.schema,
            on_change=self.on_change,
            rows_per_file=self.rows_per_file,
            gated=not self.publish,
        )
        client = S3Hook(aws_conn_id=self.source_conn_id).get_conn()
        tables = self.tables()
        try:
            result = S3BatchIngest(client, tables, settings).run()
        except LakeWriterError as err:  # another writer's table: a retry gets the same answer
            raise airflow_exception("AirflowFailException")(str(err)) from err
        if result.staged is None:
            raise AirflowSkipException(f"no new or changed objects under s3://{self.bucket}/{self.prefix}")
        snapshot_id = result.staged.snapshot_id
        if self.publish:
            snapshot_id = batches.publish(tables, tables.load("raw"), result.staged)
        summary: dict[str, Any] = {
            "table": tables.ident("raw"),
            "batch": result.staged.batch_id,
            "snapshot_id": snapshot_id,
            "published": self.publish,
            "rows": result.rows,
            "objects": len(result.objects),
            "dead": len(result.dead),
            "resumed": result.resumed,
            "sources": batch_objects(tables.load("raw").io, result.staged),  # what lineage names (ETags)
        }
        log.info(
            "%s batch %s: %d rows from %d object(s), %d dead letter(s)",
            "published" if self.publish else "staged",
            result.staged.batch_id,
            result.rows,
            len(result.objects),
            len(result.dead),
        )
        if not result.resumed:
            metrics.incr(self.pipeline, "ingest_s3", "rows", result.rows)
            metrics.incr(self.pipeline, "ingest_s3", "objects_dead_lettered", len(result.dead))
        if self.publish and not batches.changes_rows(result.staged):  # a task that succeeds emits its outlets
            raise AirflowSkipException(batches.unchanged_message(result.staged))
        for outlet in self.outlets:
            extra: dict[str, Any] = {**summary, "keys": list(result.objects[:100])}
            context["outlet_events"][outlet].extra = extra
        return summary

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the objects (with ETags) of the batch -> ``raw`` at the snapshot written."""
        from mlops_ops.lineage import openlineage as ol
        from mlops_ops.operators import openlineage as emit

        result = emit.task_result(task_instance)
        if not result:
            return None
        return emit.as_operator_lineage(ol.s3_ingest(result, catalog=emit.catalog(self.iceberg_conn_id)))
