"""Trigger that fires when objects under an S3 prefix are new or changed compared with a lake dataset."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def pending_keys(
    *, bucket: str, prefix: str, glob: str, on_change: str, lake: str, pipeline: str, dataset: str,
    aws_conn_id: str | None,
) -> list[str]:  # fmt: skip
    """Keys that the next ``S3ToLakeOperator`` run would ingest (same selection rules, same state)."""
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from mlops_ops.lake.s3_ingest import STATE_FILE, S3BatchSettings, S3Object, select_objects
    from mlops_ops.lake.store import Dataset

    client = S3Hook(aws_conn_id=aws_conn_id).get_conn()
    listing = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        listing += [S3Object(o["Key"], o["ETag"].strip('"'), int(o["Size"])) for o in page.get("Contents", [])]
    state = Dataset.at(lake, pipeline, dataset, conn_id=aws_conn_id).read_json("_state", STATE_FILE) or {}
    settings = S3BatchSettings(bucket=bucket, prefix=prefix, glob=glob, on_change=on_change)  # type: ignore[arg-type]
    return [o.key for o in select_objects(listing, state, settings)[0]]


class NewS3ObjectsTrigger(BaseTrigger):
    """Polls every ``poll_interval`` seconds (listing in a thread, so the triggerer's loop never blocks)."""

    def __init__(self, *, poll_interval: float = 30.0, **selection: Any) -> None:
        super().__init__()
        self.poll_interval = poll_interval
        self.selection = selection

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"poll_interval": self.poll_interval, **self.selection})  # fmt: skip

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                keys = await asyncio.to_thread(pending_keys, **self.selection)
            except Exception as err:  # noqa: BLE001 - S3 briefly unreachable: report, keep polling
                self.log.warning("listing s3://%s/%s failed, will retry: %s", self.selection["bucket"],
                                 self.selection["prefix"], err)  # fmt: skip
                keys = []
            if keys:
                yield TriggerEvent({"status": "new", "keys": keys[:100], "count": len(keys)})
                return
            await asyncio.sleep(self.poll_interval)
