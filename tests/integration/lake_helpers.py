"""Produce test messages and read back what the lake holds, through the committed manifests only."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pyarrow.parquet as pq

from mlops_ops.lake.kafka_ingest import STATE_FILE
from mlops_ops.lake.store import Dataset, lake_path


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i, value in enumerate(values):
        producer.produce(topic, key=str(i).encode(), value=value)
    assert producer.flush(30) == 0


def event(i: int) -> bytes:
    return json.dumps({"id": f"e{i}", "n": i, "x": i / 7, "ok": i % 2 == 0, "at": 1_700_000_000 + i}).encode()


SCHEMA = {"id": "string", "n": "int", "x": "float", "ok": "bool", "at": "timestamp"}


def committed_rows(dataset: Dataset) -> list[dict[str, Any]]:
    state = dataset.read_json("_state", STATE_FILE) or {"manifests": []}
    rows: list[dict[str, Any]] = []
    for uri in state["manifests"]:
        manifest = json.loads(lake_path(uri, conn_id="aws_default").read_bytes())
        for entry in manifest["files"]:
            path = lake_path(entry["uri"], conn_id="aws_default")
            with path.open("rb") as fh:
                table = pq.read_table(fh)
            assert table.num_rows == entry["rows"]
            rows += table.to_pylist()
    return rows


def checksum(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
