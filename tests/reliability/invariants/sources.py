"""Generated sources for the model-based harness: a Kafka cluster and an S3 bucket held in memory.

They speak the subset of confluent-kafka's ``Consumer`` and boto3's S3 client that the ingest engines call, with
the behaviour the engines depend on: offsets, low watermarks that retention moves (also in the middle of a run),
partition EOF events, consumer-group offsets; objects with ETags that are added, overwritten, deleted, and reads
that fail transiently. They are the *input* of the histories; the engines, pyiceberg and the catalog under test
are the real ones.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

TOPIC = "events"
PARTITIONS = 2
GOOD = "good"
# every kind of message the JSON decoder must turn into a dead letter, never a crash
POISON = {
    "not-utf8": b"\xff\xfe\x00{",
    "lone-surrogate": b'{"id": "\\ud800", "x": 1}',
    "deep-nesting": b"[" * 40_000,
    "huge": b'{"id": "' + b"h" * 400 + b'", "x": 1}',
    "wrong-type": b'{"id": "w", "x": "not a number"}',
    "not-an-object": b"[1, 2, 3]",
    "truncated": b'{"id": "t", "x": ',
}
MAX_VALUE_BYTES = 300


def message_value(kind: str, topic: str, partition: int, offset: int) -> bytes:
    if kind == GOOD:
        return json.dumps({"id": f"{topic}/{partition}/{offset}", "x": offset}).encode()
    return POISON[kind]


@dataclass
class _Partition:
    low: int = 0
    values: list[bytes] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)

    @property
    def high(self) -> int:
        return len(self.values)


class SimKafka:
    """One cluster with one topic; ``expired`` holds every (partition, offset) retention removed."""

    def __init__(self, cluster_id: str = "sim-cluster") -> None:
        self.cluster_id = cluster_id
        self.partitions = [_Partition() for _ in range(PARTITIONS)]
        self.group_offsets: dict[tuple[str, int], int] = {}
        self.expired: set[tuple[int, int]] = set()
        self.on_consume: Callable[[], None] | None = None  # retention moving while a run reads

    def produce(self, partition: int, kinds: list[str]) -> None:
        part = self.partitions[partition]
        for kind in kinds:
            part.kinds.append(kind)
            part.values.append(message_value(kind, TOPIC, partition, part.high))

    def expire(self, partition: int, count: int) -> None:
        part = self.partitions[partition]
        new_low = min(part.high, part.low + count)
        self.expired |= {(partition, o) for o in range(part.low, new_low)}
        part.low = new_low

    def kind(self, partition: int, offset: int) -> str:
        return self.partitions[partition].kinds[offset]

    def messages(self) -> list[tuple[int, int]]:
        return [(p, o) for p, part in enumerate(self.partitions) for o in range(part.high)]

    def consumer(self) -> SimConsumer:
        return SimConsumer(self)


class _Meta:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class _Message:
    def __init__(self, topic: str, partition: int, offset: int, value: bytes | None, error: Any = None) -> None:
        self._t, self._p, self._o, self._v, self._e = topic, partition, offset, value, error

    def error(self) -> Any:
        return self._e

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def value(self) -> bytes | None:
        return self._v

    def key(self) -> bytes | None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000 + self._o)


class SimConsumer:
    def __init__(self, cluster: SimKafka) -> None:
        self.cluster = cluster
        self.positions: dict[int, int] = {}
        self.eof_sent: set[int] = set()
        self.closed = False

    def list_topics(self, topic: str | None = None, timeout: float = 0) -> Any:
        partitions = {p: None for p in range(PARTITIONS)}
        return _Meta(cluster_id=self.cluster.cluster_id, topics={TOPIC: _Meta(partitions=partitions, error=None)})

    def committed(self, tps: list[Any], timeout: float = 0) -> list[Any]:
        return [TopicPartition(tp.topic, tp.partition, self.cluster.group_offsets.get((tp.topic, tp.partition), -1001))
                for tp in tps]  # fmt: skip

    def get_watermark_offsets(self, tp: Any, timeout: float = 0, cached: bool = False) -> tuple[int, int]:
        part = self.cluster.partitions[tp.partition]
        return part.low, part.high

    def assign(self, tps: list[Any]) -> None:
        self.positions = {tp.partition: tp.offset for tp in tps}

    def assignment(self) -> list[Any]:
        return [TopicPartition(TOPIC, p) for p in self.positions]

    def pause(self, tps: list[Any]) -> None:
        pass

    def consume(self, num_messages: int = 1, timeout: float = 0) -> list[Any]:
        if self.cluster.on_consume is not None:
            hook, self.cluster.on_consume = self.cluster.on_consume, None
            hook()
        out: list[Any] = []
        for p, pos in sorted(self.positions.items()):
            part = self.cluster.partitions[p]
            pos = max(pos, part.low)  # auto.offset.reset=earliest: below the low watermark reads from it
            while pos < part.high and len(out) < num_messages:
                out.append(_Message(TOPIC, p, pos, part.values[pos]))
                pos += 1
            self.positions[p] = pos
            if pos >= part.high and p not in self.eof_sent and len(out) < num_messages:
                self.eof_sent.add(p)
                out.append(_Message(TOPIC, p, pos, None, KafkaError(KafkaError._PARTITION_EOF)))
        return out

    def commit(self, offsets: list[Any] | None = None, asynchronous: bool = True) -> None:
        for tp in offsets or []:
            self.cluster.group_offsets[(tp.topic, tp.partition)] = tp.offset

    def close(self) -> None:
        self.closed = True


# ---------------------------------------------------------------------------------------------------- S3
BUCKET = "landing"
PREFIX = "in/"


def csv_body(key: str, version: int, rows: int, corrupt: bool) -> bytes:
    lines = ["id,x"] + [f"{key}#{version}#{i},{i}" for i in range(rows)]
    if corrupt:
        lines.append(f"{key}#{version}#bad,not-a-number")
    return ("\n".join(lines) + "\n").encode()


@dataclass
class SimObject:
    body: bytes
    etag: str
    rows: int
    corrupt: bool


class TransientS3Error(Exception):
    """Raised as botocore raises a connection error (the harness wraps it in the real botocore class)."""


class SimS3:
    """One bucket; ``fail_next`` makes the next N reads fail with a real botocore connection error."""

    def __init__(self) -> None:
        self.objects: dict[str, SimObject] = {}
        self.versions: dict[str, int] = {}
        self.fail_next = 0

    def put(self, name: str, rows: int, corrupt: bool = False) -> None:
        key = PREFIX + name
        version = self.versions.get(key, 0) + 1
        self.versions[key] = version
        body = csv_body(key, version, rows, corrupt)
        self.objects[key] = SimObject(body, hashlib.md5(body).hexdigest(), rows, corrupt)

    def delete(self, name: str) -> None:
        self.objects.pop(PREFIX + name, None)

    def client(self) -> SimS3Client:
        return SimS3Client(self)


class _Paginator:
    def __init__(self, s3: SimS3) -> None:
        self.s3 = s3

    def paginate(self, Bucket: str, Prefix: str) -> list[dict[str, Any]]:
        contents = [{"Key": k, "ETag": f'"{o.etag}"', "Size": len(o.body)}
                    for k, o in sorted(self.s3.objects.items()) if k.startswith(Prefix)]  # fmt: skip
        return [{"Contents": contents}]


class SimS3Client:
    def __init__(self, s3: SimS3) -> None:
        self.s3 = s3

    def get_paginator(self, name: str) -> _Paginator:
        assert name == "list_objects_v2"
        return _Paginator(self.s3)

    def get_object(self, Bucket: str, Key: str, Range: str | None = None, IfMatch: str | None = None) -> Any:
        from botocore.exceptions import ClientError, EndpointConnectionError

        if self.s3.fail_next > 0:
            self.s3.fail_next -= 1
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1/sim")
        obj = self.s3.objects.get(Key)
        if obj is None:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")
        body = obj.body
        if Range:
            start, end = (int(v) for v in Range.removeprefix("bytes=").split("-"))
            body = body[start : end + 1]
        return {"Body": io.BytesIO(body)}
