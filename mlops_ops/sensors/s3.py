"""Deferrable sensor: wait, without holding a worker slot, until new or changed objects land under a prefix."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk.bases.sensor import BaseSensorOperator

from mlops_ops.operators.kafka import LAKE_TEMPLATE

if TYPE_CHECKING:
    from airflow.sdk import Context


class NewS3ObjectsSensor(BaseSensorOperator):
    """Succeeds when the next :class:`~mlops_ops.operators.s3.S3ToLakeOperator` run has objects to ingest.

    Uses the same selection rules (glob, key + ETag against the dataset's lake state) as the
    operator, so "new" means "not ingested yet", not "modified recently". Checks once right
    away; then defers to :class:`~mlops_ops.triggers.s3.NewS3ObjectsTrigger` in the triggerer.
    Returns ``{"keys": [...], "count": n}``.
    """

    template_fields: Sequence[str] = ("bucket", "prefix", "glob", "lake", "pipeline", "dataset")

    def __init__(
        self,
        *,
        bucket: str,
        pipeline: str,
        prefix: str = "",
        glob: str = "*",
        dataset: str = "raw",
        lake: str = LAKE_TEMPLATE,
        on_change: str = "reingest",
        aws_conn_id: str | None = "aws_default",
        poll_interval: float = 30.0,
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("timeout", timedelta(hours=1).total_seconds())
        super().__init__(poke_interval=poll_interval, **kwargs)
        self.bucket = bucket
        self.pipeline = pipeline
        self.prefix = prefix
        self.glob = glob
        self.dataset = dataset
        self.lake = lake
        self.on_change = on_change
        self.aws_conn_id = aws_conn_id
        self.poll_interval = poll_interval
        self.deferrable = deferrable

    def _selection(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "prefix": self.prefix, "glob": self.glob, "on_change": self.on_change,
                "lake": self.lake, "pipeline": self.pipeline, "dataset": self.dataset,
                "aws_conn_id": self.aws_conn_id}  # fmt: skip

    def poke(self, context: Context) -> bool:
        from mlops_ops.triggers.s3 import pending_keys

        keys = pending_keys(**self._selection())
        if keys:
            context["ti"].xcom_push(key="new_keys", value=keys[:100])
        return bool(keys)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from mlops_ops.triggers.s3 import NewS3ObjectsTrigger, pending_keys

        keys = pending_keys(**self._selection())
        if keys:
            return {"keys": keys[:100], "count": len(keys)}
        self.defer(
            trigger=NewS3ObjectsTrigger(poll_interval=self.poll_interval, **self._selection()),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout),
        )
        return None

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        return {"keys": event["keys"], "count": event["count"]}
