"""Parse-time benchmark: the YAML factory against hand-written DAG files of the same shape.

Run with ``make bench`` (or ``python -m bench.parse_time``). Every measurement runs in a
fresh interpreter that has already imported Airflow (as the DAG processor has), then
fills a ``DagBag`` from a folder:

* factory: ``dags/mlops_pipelines.py`` + N YAML specs;
* hand-written: one ``.py`` file that builds the same DAGs (same DAG ids, task ids,
  operator classes and arguments) directly.

"cold" is the first fill in the process (the library's modules are imported then);
"warm" is the median of later fills, as in a DAG processor that pre-imports modules.
Results are printed as Markdown and written to ``bench/results/parse_time.json``.
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

HANDWRITTEN_HEAD = '''"""Hand-written DAGs of the same shape as the factory's (benchmark baseline)."""
from __future__ import annotations
from datetime import datetime, timedelta, timezone
from airflow.sdk import DAG, Asset, AssetAny, AssetWatcher, Param
from mlops_ops.operators.drift import DriftCheckOperator, DriftSignalOperator
from mlops_ops.operators.evaluate import EvaluateModelOperator, PromoteModelOperator
from mlops_ops.operators.gx import QualityGateOperator
from mlops_ops.operators.kafka import KafkaToLakeOperator
from mlops_ops.operators.spark import SparkPreprocessOperator
from mlops_ops.operators.train import TrainModelOperator
from mlops_ops.triggers.control import ControlTopicTrigger
SCHEMA = {"customer_id": "string", "tenure_months": "int", "monthly_charges": "float", "total_charges": "float",
          "contract": "string", "support_calls": "int", "churned": "bool", "event_time": "timestamp"}
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
ARGS = {"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True}
'''

# The three DAGs the factory builds from one spec (ingest, training, drift), with the same ids, operator classes,
# arguments, trigger rules, Assets (and the control-topic watcher) and Params.
HANDWRITTEN_DAG = """
with DAG(dag_id="{name}__ingest", description="d", schedule="@hourly", start_date=START, catchup=False,
         max_active_runs=1, tags=["{name}", "example", "ingest", "mlops-ops"], doc_md="# {name}: ingest",
         default_args=ARGS):
    ingest = KafkaToLakeOperator(task_id="ingest_kafka", pipeline="{name}", topics=["churn-events"],
                                 kafka_config_id="kafka_default", group_id=None, deserializer=None, schema=SCHEMA,
                                 max_messages=500000, rows_per_file=100000, poll_timeout_s=5.0, max_bad_share=0.1,
                                 max_value_bytes=1048576, on_gap="warn", dead_letter_topic=None, publish=False)
    gate = QualityGateOperator(task_id="quality_gate", pipeline="{name}", suite="churn_raw", engine="auto",
                               trigger_rule="none_failed_min_one_success",
                               outlets=[Asset(name="mlops_ops.{name}.raw", group="mlops-ops")])
    ingest >> gate

control_{idx} = Asset(name="mlops_ops.{name}.retrain_request", group="mlops-ops", watchers=[AssetWatcher(
    name="mlops_ops_{name}_retrain_request_watcher", trigger=ControlTopicTrigger(
        pipeline="{name}", topic="mlops-ops.control", kafka_config_id="kafka_control"))])
with DAG(dag_id="{name}__training", description="d", start_date=START, catchup=False, max_active_runs=1,
         schedule=AssetAny(Asset(name="mlops_ops.{name}.raw", group="mlops-ops"),
                           Asset(name="mlops_ops.{name}.drift", group="mlops-ops"), control_{idx}),
         tags=["{name}", "example", "mlops-ops"], doc_md="# {name}", default_args=ARGS,
         params={{"train_params": Param({{}}, type="object", title="t", description="d"),
                 "reason": Param(None, type=["null", "string"], maxLength=500, title="r", description="d")}}):
    pre = SparkPreprocessOperator(task_id="preprocess", pipeline="{name}", key_column="customer_id",
                                  transform="mlops_ops.examples.churn:churn_features", sql=None,
                                  transform_params={{"max_support_calls": 50}},
                                  splits={{"train": 0.8, "validation": 0.1, "test": 0.1}}, full_rebuild=False,
                                  outlets=[Asset(name="mlops_ops.{name}.features", group="mlops-ops")])
    train = TrainModelOperator(task_id="train", training=dict(pipeline="{name}", model_name="churn",
                               target="churned", task="binary", trainer="torch_mlp",
                               trainer_params={{"hidden": [64, 32], "epochs": 8, "batch_size": 512, "lr": 0.002}}))
    evaluate = EvaluateModelOperator(task_id="evaluate", model_name="churn", target="churned",
                                     task="binary", metrics=["roc_auc", "accuracy", "f1", "log_loss"],
                                     thresholds={{"roc_auc": {{"min": 0.65, "max": None}}}},
                                     max_regression={{"roc_auc": 0.02, "accuracy": 0.02}},
                                     slice_column="contract")
    promote = PromoteModelOperator(task_id="promote", model_name="churn",
                                   outlets=[Asset(name="mlops_ops.{name}.model", group="mlops-ops")])
    pre >> train >> evaluate >> promote

with DAG(dag_id="{name}__drift", description="d", schedule="@daily", start_date=START, catchup=False,
         max_active_runs=1, tags=["{name}", "drift", "example", "mlops-ops"], doc_md="# {name}: drift",
         default_args=ARGS):
    check = DriftCheckOperator(task_id="drift_check", pipeline="{name}", model_name="churn",
                               key_column="customer_id", target="churned",
                               transform="mlops_ops.examples.churn:churn_features", sql=None,
                               transform_params={{"max_support_calls": 50}}, window="since_last_check",
                               drift_share=0.3, column_threshold=None, max_rows=200000)
    signal = DriftSignalOperator(task_id="drift_signal", cooldown="6h", retries=0,
                                 inlets=[Asset(name="mlops_ops.{name}.drift", group="mlops-ops")],
                                 outlets=[Asset(name="mlops_ops.{name}.drift", group="mlops-ops")])
    check >> signal
"""

PROBE = """
import json, os, re, sys, time
import airflow.sdk, airflow.dag_processing.dagbag
from airflow.dag_processing.dagbag import DagBag
folder, repeats = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(repeats):
    t = time.perf_counter()
    bag = DagBag(dag_folder=folder)
    times.append(time.perf_counter() - t)
    assert not bag.import_errors, bag.import_errors
print(json.dumps({"times": times, "dags": len(bag.dags), "tasks": sum(len(d.tasks) for d in bag.dags.values()),
                  "peak_rss_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) / 1024}))
"""


def _factory_folder(base: Path, n: int) -> Path:
    folder = base / f"factory-{n}"
    if folder.exists():
        return folder
    (folder / "pipelines").mkdir(parents=True)
    shutil.copy(ROOT / "dags" / "mlops_pipelines.py", folder)
    for i in range(n):
        name = "churn" if i == 0 else f"churn{i:04d}"
        (folder / "pipelines" / f"{name}.yaml").write_text(SPEC.replace("pipeline: churn", f"pipeline: {name}"))
    return folder


def _handwritten_folder(base: Path, n: int) -> Path:
    folder = base / f"hand-{n}"
    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    body = HANDWRITTEN_HEAD + "".join(
        HANDWRITTEN_DAG.format(name="churn" if i == 0 else f"churn{i:04d}", idx=i) for i in range(n)
    )
    (folder / "handwritten_dags.py").write_text(body)
    return folder


def _measure(folder: Path, repeats: int, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best_of(folder: Path, repeats: int, env: dict[str, str], processes: int) -> dict:
    runs = [_measure(folder, repeats, env) for _ in range(processes)]
    cold = statistics.median(r["times"][0] for r in runs)
    warm = statistics.median(t for r in runs for t in r["times"][1:]) if repeats > 1 else None
    return {
        "cold_s": cold,
        "warm_s": warm,
        "dags": runs[0]["dags"],
        "tasks": runs[0]["tasks"],
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        env = {**os.environ, "AIRFLOW_HOME": str(base / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        results: dict = {"machine": f"{os.cpu_count()} cores", "python": sys.version.split()[0], "shape": {}}
        for n in (1, 10):
            factory = _best_of(_factory_folder(base, n), 6, env, 5)
            hand = _best_of(_handwritten_folder(base, n), 6, env, 5)
            # first parse after a spec changed: an unwritable cache folder makes every parse a miss
            no_cache = {**env, "MLOPS_OPS_PLAN_CACHE": str(Path(__file__).resolve() / "no-cache")}
            miss = _best_of(_factory_folder(base, n), 6, no_cache, 5)
            if (factory["dags"], factory["tasks"]) != (hand["dags"], hand["tasks"]):
                raise SystemExit(f"shapes differ: factory {factory}, hand-written {hand}")
            results["shape"][n] = {"factory": factory, "handwritten": hand, "factory_cache_miss": miss}
        results["scale"] = {}
        for n in (1, 100, 1000):
            results["scale"][n] = _best_of(_factory_folder(base, n), 2 if n < 1000 else 1, env, 3 if n < 1000 else 1)
        # a running task parses only its own spec (parsing context), even with 1,000 specs present
        task_env = {**env, "_AIRFLOW_PARSING_CONTEXT_DAG_ID": "churn0500__training"}
        results["task_parse_1000"] = _best_of(base / "factory-1000", 3, task_env, 3)
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "parse_time.json").write_text(json.dumps(results, indent=2))
    print(render(results))
    return 0


def render(r: dict) -> str:
    head = (
        "| specs (DAGs) | variant | cold fill (ms) | warm fill (ms) | overhead cold | overhead warm | budget | RSS MB |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for n, pair in r["shape"].items():
        h = pair["handwritten"]
        budget_ms = max(0.15 * h["cold_s"] * 1000, 15 * h["dags"])
        lines.append(f"| {n} ({h['dags']}) | hand-written | {h['cold_s'] * 1000:.0f} | {h['warm_s'] * 1000:.1f} "
                     f"| | | | {h['peak_rss_mb']:.0f} |")  # fmt: skip
        for label, f in (("factory (YAML)", pair["factory"]), ("factory, spec changed", pair["factory_cache_miss"])):
            over_cold = (f["cold_s"] - h["cold_s"]) * 1000
            over_warm = (f["warm_s"] - h["warm_s"]) * 1000
            lines.append(
                f"| {n} ({f['dags']}) | {label} | {f['cold_s'] * 1000:.0f} | {f['warm_s'] * 1000:.1f} | "
                f"{over_cold:+.0f} ms ({f['cold_s'] / h['cold_s']:.2f}x) | {over_warm:+.1f} ms "
                f"({f['warm_s'] / h['warm_s']:.2f}x) | {budget_ms:.0f} ms | {f['peak_rss_mb']:.0f} |"
            )
    lines += ["", "| specs | DagBag fill (s) | per spec (ms) | peak RSS (MB) |", "|---|---|---|---|"]
    for n, s in r["scale"].items():
        lines.append(f"| {n} | {s['cold_s']:.2f} | {s['cold_s'] * 1000 / int(n):.1f} | {s['peak_rss_mb']:.0f} |")
    t = r["task_parse_1000"]
    lines.append(f"\nTask-run parse with 1,000 specs present (parsing context set): cold {t['cold_s'] * 1000:.0f} ms, "
                 f"warm {t['warm_s'] * 1000:.1f} ms, DAGs built {t['dags']}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
