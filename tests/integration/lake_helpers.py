"""Produce test messages and read back what the lake holds on ``main`` (what every reader sees)."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from mlops_ops.lake.tables import PipelineTables, load_catalog


def produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "message.max.bytes": 20_000_000})
    for i, value in enumerate(values):
        producer.produce(topic, key=str(i).encode(), value=value)
    assert producer.flush(30) == 0


def event(i: int) -> bytes:
    return json.dumps({"id": f"e{i}", "n": i, "x": i / 7, "ok": i % 2 == 0, "at": 1_700_000_000 + i}).encode()


SCHEMA = {"id": "string", "n": "int", "x": "float", "ok": "bool", "at": "timestamp"}


def new_tables(prefix: str = "p") -> PipelineTables:
    """A new pipeline namespace in the stack's catalog (pyiceberg's own configuration, as any user has it)."""
    return pipeline_tables(f"{prefix}{uuid.uuid4().hex[:8]}")


def pipeline_tables(pipeline: str) -> PipelineTables:
    return PipelineTables(load_catalog(None), pipeline)


def committed_rows(tables: PipelineTables, name: str = "raw") -> list[dict[str, Any]]:
    table = tables.load(name)
    if table is None or table.current_snapshot() is None:
        return []
    rows: list[dict[str, Any]] = table.scan().to_arrow().to_pylist()
    return rows


def checksum(ids: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
