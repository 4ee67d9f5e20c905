"""A Spark task's fixed cost: a fresh process that gets a session and runs one small job, as every Spark task does.

* baseline (hand-written, no library code): ``SparkSession.builder.master("local[*]")...getOrCreate()`` in a fresh
  interpreter, then the job: the cold JVM every task paid before the stack ran a Spark Connect server;
* library: a fresh interpreter gets its session from ``SparkHook`` with the stack's ``spark_default`` (the embedded
  Spark Connect server, warm), then the same job.

The job: 200,000 generated rows, a hash bucket per row, a count per bucket (a shuffle), collected. Each side runs
``BENCH_SPARK_RUNS`` times (default 3, alternating); the median wall time from process start to the job's result
is reported, with the ratio library / baseline, and each process's peak RSS (its whole process tree: the baseline's
JVM is its child; the library's process has none, the server's RSS is reported apart). Needs ``make up`` (the
stack's environment, as ``make bench`` exports it). Results go to ``bench/results/spark_task_start.json``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

JOB = """
rows = spark.range(200_000).selectExpr("id", "pmod(xxhash64(cast(id as string)), 16) as bucket")
counts = sorted(r["count"] for r in rows.groupBy("bucket").count().collect())
assert sum(counts) == 200_000, counts
"""
BASELINE = (
    "from pyspark.sql import SparkSession\n"
    "spark = (SparkSession.builder.master('local[*]').config('spark.ui.enabled', 'false')"
    ".config('spark.sql.shuffle.partitions', '8').config('spark.driver.bindAddress', '127.0.0.1')"
    ".config('spark.driver.host', '127.0.0.1').getOrCreate())\n" + JOB
)
LIBRARY = "from mlops_ops.hooks.spark import SparkHook\nspark = SparkHook().get_conn()\n" + JOB


def _run(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds of a fresh interpreter running ``code``, and the peak RSS (MiB) of its process tree."""
    import psutil

    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    watched = psutil.Process(process.pid)
    peak = 0.0
    while process.poll() is None:
        try:
            tree = [watched, *watched.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree) / 2**20)
        except psutil.Error:
            pass
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"benchmark process failed ({process.returncode})")
    return elapsed, peak


def main() -> int:

    env = dict(os.environ)
    spark_default = json.loads(env.get("AIRFLOW_CONN_SPARK_DEFAULT", "{}"))
    if not str(spark_default.get("host", "")).startswith("sc://"):
        print("spark_default does not name the stack's Spark Connect server: run 'make up' and export "
              "'mlops-ops stack env' (make bench does)", file=sys.stderr)  # fmt: skip
        return 2
    baseline_env = {
        k: v for k, v in env.items() if k not in ("AIRFLOW_CONN_SPARK_DEFAULT", "SPARK_CONNECT_MODE_ENABLED")
    }
    runs = int(os.environ.get("BENCH_SPARK_RUNS", "3"))
    times: dict[str, list[float]] = {"baseline": [], "library": []}
    peaks: dict[str, list[float]] = {"baseline": [], "library": []}
    for _ in range(runs):
        for name, code, run_env in (("baseline", BASELINE, baseline_env), ("library", LIBRARY, env)):
            elapsed, peak = _run(code, run_env)
            times[name].append(elapsed)
            peaks[name].append(peak)
    from mlops_ops.stack import process

    record = process.read_pidfile(Path(env["MLOPS_OPS_HOME"]) / "pids" / "spark-connect.pid")
    server = record.process() if record else None
    server_rss = (
        round(sum(p.memory_info().rss for p in [server, *server.children(recursive=True)]) / 2**20, 1)
        if server
        else None
    )
    result: dict[str, Any] = {
        "runs": runs,
        "median_s": {name: round(statistics.median(t), 2) for name, t in times.items()},
        "all_s": {name: [round(x, 2) for x in t] for name, t in times.items()},
        "peak_rss_mb": {name: round(max(p), 1) for name, p in peaks.items()},
        "connect_server_rss_mb": server_rss,
    }
    result["ratio_library_to_baseline"] = round(result["median_s"]["library"] / result["median_s"]["baseline"], 3)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "spark_task_start.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
