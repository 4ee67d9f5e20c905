"""Parse cost against dag-factory, the plain YAML factory teams use: N pipeline specs against dag-factory configs that
build DAGs of the same shape (same DAG ids, task ids, dependencies and cron schedules) with its cheapest tasks
(``EmptyOperator``).

Run with ``make bench`` (or ``python -m bench.parse_vs_dag_factory [N]``; N = 1,000 specs = 3,000 DAGs). dag-factory
1.1.0 is installed (``--no-deps``) into a folder of its own under ``bench/results``; its dependencies are Airflow's.

Each measurement is one fresh interpreter that has imported what Airflow's DAG processor imports before it parses a
file (``airflow.*`` only: ``parsing_pre_import_modules`` pre-imports the Airflow modules a DAG file names, not the
library's), then fills a ``DagBag`` from the folder once, timed: the side's own import (mlops_ops or dagfactory)
is part of its time, as in each of the DAG processor's parsing processes. The sides alternate, K times each;
medians are reported. The library's plan cache is warm (as in a running DAG processor, which re-parses unchanged
files); a cold cache (every spec edited) is reported too. The shapes are compared first: the script refuses to
report when DAGs, tasks or edges differ.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = (ROOT / "dags" / "pipelines" / "churn.yaml").read_text()
DAG_FACTORY = "dag-factory==1.1.0"

# dag-factory config of one pipeline: the three DAGs the library builds from dags/pipelines/churn.yaml
DAG_FACTORY_CONFIG = """
{name}__ingest:
  default_args: {{owner: ml-platform, retries: 2, start_date: 2026-01-01}}
  schedule: "@hourly"
  catchup: false
  max_active_runs: 1
  tags: [{name}, ingest]
  tasks:
    ingest_kafka: {{operator: airflow.providers.standard.operators.empty.EmptyOperator}}
    quality_gate: {{operator: airflow.providers.standard.operators.empty.EmptyOperator, dependencies: [ingest_kafka]}}
{name}__training:
  default_args: {{owner: ml-platform, retries: 2, start_date: 2026-01-01}}
  schedule: null
  catchup: false
  max_active_runs: 1
  tags: [{name}]
  tasks:
    preprocess: {{operator: airflow.providers.standard.operators.empty.EmptyOperator}}
    train: {{operator: airflow.providers.standard.operators.empty.EmptyOperator, dependencies: [preprocess]}}
    evaluate: {{operator: airflow.providers.standard.operators.empty.EmptyOperator, dependencies: [train]}}
    promote: {{operator: airflow.providers.standard.operators.empty.EmptyOperator, dependencies: [evaluate]}}
{name}__drift:
  default_args: {{owner: ml-platform, retries: 2, start_date: 2026-01-01}}
  schedule: "@daily"
  catchup: false
  max_active_runs: 1
  tags: [{name}, drift]
  tasks:
    drift_check: {{operator: airflow.providers.standard.operators.empty.EmptyOperator}}
    drift_signal: {{operator: airflow.providers.standard.operators.empty.EmptyOperator, dependencies: [drift_check]}}
"""
DAG_FACTORY_LOADER = """# dag-factory's documented loader (airflow dag)
from pathlib import Path
from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder=str(Path(__file__).parent / "configs"), suffix=[".yml"])
"""

PROBE = """
import json, re, sys, time
folder, side = sys.argv[1], sys.argv[2]
import airflow.sdk  # the DAG processor has Airflow imported (not the library the DAG file imports)
from airflow.dag_processing.dagbag import DagBag
started = time.perf_counter()
bag = DagBag(dag_folder=folder)
elapsed = time.perf_counter() - started
assert not bag.import_errors, bag.import_errors
shape = sorted((d.dag_id, t.task_id, tuple(sorted(t.upstream_task_ids))) for d in bag.dags.values() for t in d.tasks)
crons = sorted((d.dag_id, getattr(d.timetable, "_expression", None)) for d in bag.dags.values())
print(json.dumps({"s": elapsed, "dags": len(bag.dags), "shape": shape, "crons": crons,
                  "rss_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024}))
"""


def _install_dag_factory() -> Path:
    target = ROOT / "bench" / "results" / "dag-factory"
    if not (target / "dagfactory").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        DAG_FACTORY], check=True)  # fmt: skip
    return target


def _folders(base: Path, n: int) -> tuple[Path, Path]:
    ours, theirs = base / "mlops-ops", base / "dag-factory"
    (ours / "pipelines").mkdir(parents=True)
    (theirs / "configs").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_pipelines.py", ours)
    (theirs / "dag_factory_dags.py").write_text(DAG_FACTORY_LOADER)
    for i in range(n):
        name = f"churn{i:04d}"
        (ours / "pipelines" / f"{name}.yaml").write_text(SPEC.replace("pipeline: churn", f"pipeline: {name}"))
        (theirs / "configs" / f"{name}.yml").write_text(DAG_FACTORY_CONFIG.format(name=name))
    return ours, theirs


def _run(folder: Path, side: str, env: dict[str, str]) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(folder), side], env=env, capture_output=True, text=True,
                         cwd=ROOT)  # fmt: skip
    if out.returncode != 0:
        raise SystemExit(f"{side} failed to parse {folder}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(n: int = 1000, rounds: int = 5) -> int:
    library = _install_dag_factory()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ours, theirs = _folders(base, n)
        env = {**os.environ, "AIRFLOW_HOME": str(base / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "MLOPS_OPS_PLAN_CACHE": str(base / "plan-cache"), "DAG_FACTORY_TELEMETRY_ENABLED": "False",
               "AIRFLOW__DAG_FACTORY__TELEMETRY_ENABLED": "False",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(library), os.environ.get("PYTHONPATH")]))}  # fmt: skip
        cold = _run(ours, "mlops-ops", env)  # fills the plan cache: what a DAG processor has after its first parse
        baseline = _run(theirs, "dag-factory", env)
        if (cold["dags"], cold["shape"], cold["crons"]) != (baseline["dags"], baseline["shape"], baseline["crons"]):
            raise SystemExit("the two sides build different DAGs: refusing to compare")
        times: dict[str, list[float]] = {"mlops-ops": [], "dag-factory": []}
        rss: dict[str, float] = {"mlops-ops": 0.0, "dag-factory": 0.0}
        for _ in range(rounds):
            for side, folder in (("mlops-ops", ours), ("dag-factory", theirs)):
                result = _run(folder, side, env)
                times[side].append(result["s"])
                rss[side] = max(rss[side], result["rss_mb"])
        miss = [_run(ours, "mlops-ops", {**env, "MLOPS_OPS_PLAN_CACHE": str(base / f"empty-{i}")})["s"]
                for i in range(max(1, rounds // 2))]  # fmt: skip
    ours_s, theirs_s = statistics.median(times["mlops-ops"]), statistics.median(times["dag-factory"])
    results = {
        "machine": f"{os.cpu_count()} cores", "python": sys.version.split()[0], "specs": n, "dags": cold["dags"],
        "tasks": len(cold["shape"]), "rounds": rounds, "mlops_ops_s": ours_s, "dag_factory_s": theirs_s,
        "ratio": ours_s / theirs_s, "cache_miss_s": statistics.median(miss), "cache_miss_ratio":
        statistics.median(miss) / theirs_s, "peak_rss_mb": rss, "all_s": times,
    }  # fmt: skip
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "parse_vs_dag_factory.json").write_text(json.dumps(results, indent=2))
    print(f"| {n} specs, {cold['dags']} DAGs, {len(cold['shape'])} tasks | mlops-ops {ours_s:.2f} s | dag-factory "
          f"{theirs_s:.2f} s | ratio {ours_s / theirs_s:.2f} | cache miss {statistics.median(miss):.2f} s "
          f"({statistics.median(miss) / theirs_s:.2f}x) | peak RSS {rss['mlops-ops']:.0f} / {rss['dag-factory']:.0f}"
          " MB |")  # fmt: skip
    return 0 if ours_s <= theirs_s else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
