"""What a lake dataset holds now: the committed files, read from its state, never from a listing."""

from __future__ import annotations

import json
from typing import Any

from mlops_ops.lake.store import Dataset, lake_path


def committed_files(dataset: Dataset, conn_id: str | None = "aws_default") -> list[dict[str, Any]]:
    """File entries (``uri``, ``rows``, ``sha256``, ``schema``) of every committed batch, Kafka and S3."""
    files: list[dict[str, Any]] = []
    kafka = dataset.read_json("_state", "kafka.json")
    if kafka:
        for uri in kafka["manifests"]:
            files += json.loads(lake_path(uri, conn_id).read_bytes())["files"]
    s3 = dataset.read_json("_state", "s3.json")
    if s3:
        for entry in s3["objects"].values():
            files += entry["files"]
    return files
