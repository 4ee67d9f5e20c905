"""Ingestion benchmarks against the embedded stack (``make bench`` starts it).

* Kafka -> Iceberg: the library's batch (read, decode, check, Parquet, stage on the audit branch, publish:
  two Iceberg commits) versus a raw confluent-kafka loop that writes the same Parquet (same columns and
  types, zstd, files per partition) with pyarrow, same topic, same run, alternating order; messages/s,
  median of 3. A bare consume loop (no decoding, nothing written) is reported as the limit.
* S3 -> Iceberg: ``S3BatchIngest`` on a CSV object versus raw boto3 ``get_object`` streamed through pyarrow's
  CSV reader into Parquet; MB/s, median of 3.
* Peak RSS of the library's ingestion at 1x and 10x the data, each in a fresh process.

Both sides write to local disk (the library's tables: a SQL catalog on SQLite with its warehouse in a
temporary folder), so the comparison is about the ingestion code, not the lake's storage.
"""

from __future__ import annotations

import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = {"customer_id": "string", "tenure_months": "int", "monthly_charges": "float", "total_charges": "float",
          "contract": "string", "support_calls": "int", "churned": "bool"}  # fmt: skip


def _env() -> tuple[str, Any]:
    from mlops_ops.stack import EmbeddedStack

    stack = EmbeddedStack(project=ROOT)
    os.environ.update(stack.environment())
    from mlops_ops.stack.services import s3_client

    return f"127.0.0.1:{stack.settings.ports['kafka']}", s3_client(stack.settings)


def produce(bootstrap: str, topic: str, n: int) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3)])[topic].result(10)
    rng = random.Random(1)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50, "batch.num.messages": 10000})
    for i in range(n):
        row = {"customer_id": f"c{i}", "tenure_months": rng.randint(0, 72), "monthly_charges": rng.uniform(18, 120),
               "total_charges": rng.uniform(0, 9000), "contract": "month-to-month", "support_calls": rng.randint(0, 9),
               "churned": rng.random() < 0.3}  # fmt: skip
        producer.produce(topic, json.dumps(row).encode())
        if i % 50_000 == 0:
            producer.flush()
    producer.flush()


def local_tables(out: Path, create: bool = False) -> Any:
    """The pipeline's tables in a SQL catalog on SQLite with the warehouse on local disk. ``create``: make ``raw``
    and ``raw_dead_letters`` now (untimed): a pipeline ingests into existing tables on every run but its first."""
    from pyiceberg.catalog.sql import SqlCatalog

    from mlops_ops.lake.tables import PipelineTables, raw_columns

    (out / "wh").mkdir(parents=True, exist_ok=True)
    tables = PipelineTables(
        SqlCatalog("bench", uri=f"sqlite:///{out}/catalog.db", warehouse=f"file://{out}/wh"), "bench"
    )
    if create:
        tables.raw(raw_columns(SCHEMA))
        tables.dead_letters()
    return tables


def library_kafka(bootstrap: str, topic: str, tables: Any) -> int:
    from confluent_kafka import Consumer

    from mlops_ops.lake import batches
    from mlops_ops.lake.kafka_ingest import CONSUMER_OVERRIDES, KafkaBatchSettings, stage_from_kafka
    from mlops_ops.lake.records import json_decoder

    config = {"bootstrap.servers": bootstrap, "group.id": f"lib-{uuid.uuid4().hex}", **CONSUMER_OVERRIDES}
    settings = KafkaBatchSettings(topics=[topic], decoder=json_decoder, schema=SCHEMA, max_messages=10_000_000,
                                  rows_per_file=200_000, poll_timeout_s=5)  # fmt: skip
    result = stage_from_kafka(lambda: Consumer(config), tables, settings,
                              publish=lambda staged: batches.publish(tables, tables.load("raw"), staged))  # fmt: skip
    return result.rows


def bare_kafka(bootstrap: str, topic: str, out: Path) -> int:
    """The limit: consume every message, decode nothing, write nothing."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
    parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    eof: set[int] = set()
    total = 0
    while len(eof) < len(parts):
        for msg in consumer.consume(10_000, timeout=1):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                continue
            total += 1
    consumer.close()
    return total


def raw_kafka(bootstrap: str, topic: str, out: Path) -> int:
    """What a careful engineer writes by hand: manual assignment, JSON, typed Arrow schema, Parquet per partition."""
    from datetime import UTC, datetime

    import pyarrow as pa
    import pyarrow.parquet as pq
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    meta = [("_topic", pa.string()), ("_partition", pa.int32()), ("_offset", pa.int64()),
            ("_timestamp", pa.timestamp("us", tz="UTC"))]  # fmt: skip
    schema = pa.schema([(k, types[v]) for k, v in SCHEMA.items()] + meta)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "enable.partition.eof": True})  # fmt: skip
    parts = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, 0) for p in parts])
    writers: dict[int, Any] = {}
    buffers: dict[int, list[dict[str, Any]]] = {p: [] for p in parts}
    eof: set[int] = set()
    total = 0
    out.mkdir(parents=True, exist_ok=True)

    def flush(p: int) -> None:
        if buffers[p]:
            if p not in writers:
                writers[p] = pq.ParquetWriter(str(out / f"raw-{p}.parquet"), schema, compression="zstd")
            writers[p].write_table(pa.Table.from_pylist(buffers[p], schema=schema))
            buffers[p] = []

    while len(eof) < len(parts):
        for msg in consumer.consume(10_000, timeout=1):
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                continue
            row = json.loads(msg.value())
            row.update(_topic=topic, _partition=msg.partition(), _offset=msg.offset(),
                       _timestamp=datetime.fromtimestamp(msg.timestamp()[1] / 1000, tz=UTC))  # fmt: skip
            buffers[msg.partition()].append(row)
            total += 1
            if len(buffers[msg.partition()]) >= 10_000:
                flush(msg.partition())
    for p in parts:
        flush(p)
        if p in writers:
            writers[p].close()
    consumer.close()
    return total


def csv_object(client: Any, bucket: str, key: str, rows: int) -> int:
    """Upload a churn-like CSV of ``rows`` rows, written to a temporary file first (10M rows is ~0.4 GB)."""
    rng = random.Random(2)
    with tempfile.NamedTemporaryFile("w", suffix=".csv") as fh:
        fh.write("customer_id,tenure_months,monthly_charges,total_charges,contract,support_calls,churned\n")
        for start in range(0, rows, 100_000):
            fh.write("".join(
                f"c{i},{rng.randint(0, 72)},{rng.uniform(18, 120):.2f},{rng.uniform(0, 9000):.2f},one-year,"
                f"{rng.randint(0, 9)},{'true' if rng.random() < 0.3 else 'false'}\n"
                for i in range(start, min(rows, start + 100_000))
            ))  # fmt: skip
        fh.flush()
        client.upload_file(fh.name, bucket, key)
        return Path(fh.name).stat().st_size


def library_s3(bucket: str, tables: Any) -> int:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from mlops_ops.lake import batches
    from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings

    settings = S3BatchSettings(bucket=bucket, format="csv", schema=SCHEMA)
    result = S3BatchIngest(S3Hook(aws_conn_id="aws_default").get_conn(), tables, settings).run()
    assert result.staged is not None
    batches.publish(tables, tables.load("raw"), result.staged)
    return result.rows


def raw_s3(settings: Any, bucket: str, key: str, out: Path) -> int:
    """The same conversion by hand, including creating its boto3 client (the library creates its hook's), with
    the provenance columns the ``raw`` contract asks of every row (source, object key and ETag, row number, batch):
    the fair baseline. Nothing is committed anywhere (the library makes two Iceberg commits)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
    schema = pa.schema([(k, types[v]) for k, v in SCHEMA.items()])
    provenance = pa.schema([("_source", pa.string()), ("_object_key", pa.string()), ("_object_etag", pa.string()),
                            ("_row", pa.int64()), ("_batch", pa.string())])  # fmt: skip
    from mlops_ops.stack.services import s3_client

    obj = s3_client(settings).get_object(Bucket=bucket, Key=key)
    etag, body = obj["ETag"].strip('"'), obj["Body"]
    reader = pcsv.open_csv(body, convert_options=pcsv.ConvertOptions(column_types=schema))  # pyarrow's 1 MiB blocks
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    full = pa.schema([*schema, *provenance])
    with pq.ParquetWriter(str(out / "raw.parquet"), full, compression="zstd") as writer:
        for batch in reader:
            n = batch.num_rows
            extra = [pa.repeat("s3", n), pa.repeat(key, n), pa.repeat(etag, n),
                     pa.array(np.arange(rows, rows + n, dtype=np.int64)), pa.repeat("bench", n)]  # fmt: skip
            columns = [batch.column(name) for name in schema.names] + extra
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=full))
            rows += n
    return rows


def _timed(fn: Any, *args: Any) -> tuple[float, int]:
    started = time.perf_counter()
    n = fn(*args)
    return time.perf_counter() - started, n


def rss_child(kind: str, arg: str) -> None:
    import psutil
    import pyarrow.csv
    import pyarrow.parquet  # noqa: F401 - imported up front so the baseline includes them
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from mlops_ops.lake import kafka_ingest, s3_ingest  # noqa: F401

    bootstrap, _client = _env()
    S3Hook(aws_conn_id="aws_default").get_conn().list_buckets()
    baseline = psutil.Process().memory_info().rss / 2**20
    with tempfile.TemporaryDirectory() as tmp:
        tables = local_tables(Path(tmp), create=True)
        n = library_kafka(bootstrap, arg, tables) if kind == "kafka" else library_s3(arg, tables)
    peak = peak_rss_mb()
    print(json.dumps({"rows": n, "baseline_rss_mb": baseline, "peak_rss_mb": peak, "growth_mb": peak - baseline}))


def peak_rss_mb() -> float:
    """Peak RSS of this process image. Not ``ru_maxrss``: Linux carries that over ``execve`` from the
    parent, so a child started by a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rss(kind: str, arg: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.ingest", "--rss", kind, arg], cwd=ROOT, capture_output=True,
                         text=True, check=True, env=dict(os.environ))  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    bootstrap, client = _env()
    n = int(os.environ.get("BENCH_MESSAGES", "200000"))
    results: dict[str, Any] = {"messages": n}
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    produce(bootstrap, topic, n)
    lib_rates, raw_rates, bare_rates = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            sides = (("lib", library_kafka, lib_rates), ("raw", raw_kafka, raw_rates), ("bare", bare_kafka, bare_rates))
            for name, fn, rates in sides[:: 1 - 2 * (i % 2)]:
                target: Any = Path(tmp) / f"{name}{i}"
                if name == "lib":
                    target = local_tables(target, create=True)
                seconds, rows = _timed(fn, bootstrap, topic, target)
                assert rows == n, (name, rows)
                rates.append(rows / seconds)
    results["kafka"] = {"library_msgs_s": statistics.median(lib_rates), "raw_msgs_s": statistics.median(raw_rates),
                        "bare_consume_msgs_s": statistics.median(bare_rates)}  # fmt: skip
    results["kafka"]["ratio"] = results["kafka"]["library_msgs_s"] / results["kafka"]["raw_msgs_s"]
    results["kafka"]["ratio_to_bare_consume"] = (
        results["kafka"]["library_msgs_s"] / results["kafka"]["bare_consume_msgs_s"]
    )

    rows = int(os.environ.get("BENCH_CSV_ROWS", "2000000"))
    from mlops_ops.stack import EmbeddedStack

    stack_settings = EmbeddedStack(project=ROOT).settings
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    size = csv_object(client, bucket, "data.csv", rows)
    lib_mb, raw_mb = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(3):
            for side in ("lib", "raw")[:: 1 - 2 * (i % 2)]:  # alternate which side runs first
                if side == "lib":
                    seconds, got = _timed(library_s3, bucket, local_tables(Path(tmp) / f"lib{i}", create=True))
                    lib_mb.append(size / seconds / 1e6)
                else:
                    seconds, got = _timed(raw_s3, stack_settings, bucket, "data.csv", Path(tmp) / f"raw{i}")
                    raw_mb.append(size / seconds / 1e6)
                assert got == rows, (side, got)
    results["s3"] = {"object_mb": size / 1e6, "library_mb_s": statistics.median(lib_mb),
                     "raw_mb_s": statistics.median(raw_mb)}  # fmt: skip
    results["s3"]["ratio"] = results["s3"]["library_mb_s"] / results["s3"]["raw_mb_s"]

    small, big = f"rss1-{uuid.uuid4().hex[:6]}", f"rss10-{uuid.uuid4().hex[:6]}"
    produce(bootstrap, small, n // 4)
    produce(bootstrap, big, n * 10 // 4)
    results["kafka_rss"] = {"1x": _rss("kafka", small), "10x": _rss("kafka", big)}
    b1, b10 = f"rss1-{uuid.uuid4().hex[:6]}", f"rss10-{uuid.uuid4().hex[:6]}"
    # 1x is one full Parquet file (rows_per_file = 1M) so it reaches the steady state; 10x is 10 files.
    for b, r in ((b1, 1_000_000), (b10, 10_000_000)):
        client.create_bucket(Bucket=b)
        csv_object(client, b, "data.csv", r)
    results["s3_rss"] = {"1x": _rss("s3", b1), "10x": _rss("s3", b10)}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "ingest.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--rss"]:
        rss_child(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(main())
