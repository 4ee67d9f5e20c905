"""Incremental preprocessing: the cost of building features for one new raw batch must not grow with history.

Two pipelines in a local catalog (warehouse on this disk): one with 1 batch of raw history, one with 100,
both already built. The same new batch (``BENCH_BATCH_ROWS`` rows) is then published to each and
``build_features`` runs; its time is compared (target: 100 batches <= 1.5x 1 batch). Batches are committed
through the lake's own commit path (stage on the audit branch, publish). Median of 3 new batches, one warm
local Spark session. Results go to ``bench/results/incremental.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.ingest import local_tables

ROOT = Path(__file__).resolve().parent.parent
TRANSFORM = "bench.quality:bench_transform"


def add_batch(tables: Any, rows: int, seed: int) -> None:
    """Write one raw batch as Parquet and commit it the way ingestion does (stage, then publish)."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops_ops.lake import batches, transaction
    from mlops_ops.lake.tables import SOURCE_COLUMNS, arrow_schema, data_folder, raw_columns

    spec = {"customer_id": "string", "tenure_months": "int", "monthly_charges": "float", "total_charges": "float",
            "contract": "string", "support_calls": "int", "churned": "bool"}  # fmt: skip
    raw = tables.raw(raw_columns(spec))
    rng = random.Random(seed)
    batch = f"b{seed}-{uuid.uuid4().hex[:6]}"
    data = [{"customer_id": f"c{seed}-{i}", "tenure_months": rng.randint(0, 72),
             "monthly_charges": rng.uniform(18, 120), "total_charges": rng.uniform(0, 9000), "contract": "one-year",
             "support_calls": rng.randint(0, 9), "churned": rng.random() < 0.3, "_source": "s3", "_batch": batch}
            for i in range(rows)]  # fmt: skip
    path = data_folder(raw, batch, "part.parquet")
    with raw.io.new_output(path).create(overwrite=True) as fh:
        pq.write_table(pa.Table.from_pylist(data, schema=arrow_schema({**spec, **SOURCE_COLUMNS})), fh)
    start = transaction.cursor(transaction.head(raw), "s3")
    staged = transaction.stage(raw, source="s3", batch_id=batch, start_cursor=start, end_cursor=batch, files=[path])
    batches.publish(tables, raw, staged)


def build(spark: Any, tables: Any) -> tuple[float, str, int]:
    from mlops_ops.lake.features import FeatureBuild, build_features

    started = time.perf_counter()
    result = build_features(spark, tables, FeatureBuild("customer_id", transform=TRANSFORM))
    return time.perf_counter() - started, result.mode, result.rows_in


def main() -> int:
    from mlops_ops.hooks.spark import SparkHook
    from mlops_ops.lake.tables import PipelineTables

    rows = int(os.environ.get("BENCH_BATCH_ROWS", "20000"))
    history = int(os.environ.get("BENCH_HISTORY", "100"))
    spark = SparkHook(app_name="mlops-ops-bench-incremental").get_conn()
    scratch = Path(tempfile.mkdtemp(prefix="mlops-bench-incr-"))
    results: dict[str, Any] = {"batch_rows": rows, "history_batches": history}
    try:
        short = local_tables(scratch / "one")
        long = PipelineTables(local_tables(scratch / "many").catalog, "bench")
        add_batch(short, rows, 0)
        for i in range(history):
            add_batch(long, rows, 1_000 + i)
        for tables in (short, long):
            build(spark, tables)  # the first (full) build of each; also warms Spark up
        times: dict[str, list[float]] = {"1": [], str(history): []}
        for k in range(3):
            for name, tables in (("1", short), (str(history), long))[:: 1 - 2 * (k % 2)]:
                add_batch(tables, rows, 90_000 + k)
                seconds, mode, rows_in = build(spark, tables)
                assert mode == "incremental" and rows_in == rows, (mode, rows_in)
                times[name].append(seconds)
        results["new_batch_build_s"] = {name: statistics.median(t) for name, t in times.items()}
        results["ratio"] = results["new_batch_build_s"][str(history)] / results["new_batch_build_s"]["1"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "incremental.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
