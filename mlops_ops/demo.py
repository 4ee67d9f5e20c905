"""``python -m mlops_ops.demo``: the main job on the embedded stack, end to end.

1. Seeds realistic churn events (with a few malformed ones) into Kafka, runs ``churn__ingest`` (the only
   writer of the Iceberg table ``churn.raw``: stage, audit with GX, publish) and ``churn__training``
   (incremental features, torch training, evaluation, promotion), both built from
   ``dags/pipelines/churn.yaml``, and checks that exactly the produced rows landed once and the malformed
   ones are in ``churn.raw_dead_letters``.
2. Shifted events arrive: ingest, ``churn__drift`` finds drift, ``churn__training`` retrains.
3. Drops CSV exports (one of them corrupt) into S3, runs ``churn_exports__ingest`` from
   ``dags/pipelines/churn_exports.yaml``, and checks the good files were ingested and the corrupt one
   dead-lettered; a second run finds nothing new.
Prints where to look; exits non-zero if any of that did not hold.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops_ops.stack import EmbeddedStack

TOPIC = "churn-events"
CONTRACTS = ("month-to-month", "one-year", "two-year")


def churn_event(rng: random.Random, customer: str, now: datetime, *, shifted: bool = False) -> dict[str, Any]:
    """One account event; ``shifted`` = after a price rise and a service outage (higher charges, more calls)."""
    tenure = rng.randint(0, 72)
    contract = rng.choices(CONTRACTS, weights=(75, 15, 10) if shifted else (55, 25, 20))[0]
    monthly = round(rng.uniform(18, 120) * (1.6 if shifted else 1.0) + (30 if shifted else 0), 2)
    calls = min(int(rng.expovariate(0.6)) + (rng.randint(2, 5) if shifted else 0), 12)
    risk = -1.2 - 0.04 * tenure + 0.35 * calls + (1.1 if contract == "month-to-month" else -0.6) + 0.01 * monthly
    return {
        "customer_id": customer,
        "tenure_months": tenure,
        "monthly_charges": monthly,
        "total_charges": round(monthly * max(tenure, 1), 2),
        "contract": contract,
        "support_calls": calls,
        "churned": rng.random() < 1 / (1 + math.exp(-risk)),
        "event_time": (now - timedelta(minutes=rng.randint(0, 60 * 24))).isoformat(),
    }


def seed_kafka(bootstrap: str, good: int, bad: int, seed: int, *, shifted: bool = False) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    if TOPIC not in admin.list_topics(timeout=10).topics:
        admin.create_topics([NewTopic(TOPIC, num_partitions=3)])[TOPIC].result(10)
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    now = datetime.now(UTC)
    batch = uuid.uuid4().hex[:6]
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    bad_at = set(rng.sample(range(good + bad), bad))
    n_good = 0
    for i in range(good + bad):
        if i in bad_at:
            value = rng.choice([b"{truncated", b'{"customer_id": 42}', b"\xff\xfe not json"])
            producer.produce(TOPIC, value=value)
            continue
        customer = f"c-{batch}-{n_good:06d}"
        producer.produce(
            TOPIC, key=customer.encode(), value=json.dumps(churn_event(rng, customer, now, shifted=shifted)).encode()
        )
        n_good += 1
    if producer.flush(60) != 0:
        raise RuntimeError("Kafka did not acknowledge every demo message")


def seed_s3_exports(client: Any, bucket: str, files: int, rows: int, seed: int) -> tuple[int, str]:
    """Upload ``files`` good CSV exports and one corrupt one; return (good rows, corrupt key)."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    columns = ["customer_id", "tenure_months", "monthly_charges", "total_charges", "contract", "support_calls",
               "churned"]  # fmt: skip
    for f in range(files):
        lines = [",".join(columns)]
        for i in range(rows):
            e = churn_event(rng, f"x-{stamp}-{f}-{i:05d}", now)
            lines.append(",".join(str(e[c]).lower() if isinstance(e[c], bool) else str(e[c]) for c in columns))
        client.put_object(Bucket=bucket, Key=f"churn/exports/{stamp}-{f}.csv", Body=("\n".join(lines) + "\n").encode())
    corrupt = f"churn/exports/{stamp}-corrupt.csv"
    client.put_object(Bucket=bucket, Key=corrupt, Body=b"customer_id,tenure_months\nx,not-a-number\n")
    return files * rows, corrupt


def run_dag(bag: Any, dag_id: str) -> tuple[Any, dict[str, Any] | None, float]:
    started = time.monotonic()
    run = bag.dags[dag_id].test()
    task = next((t for t in run.get_task_instances() if t.task_id.startswith("ingest_")), None)
    # a skipped task has no return value: asking for it would log an error line
    result = task.xcom_pull(task_ids=task.task_id) if task and task.state == "success" else None
    return run, result, time.monotonic() - started


def lake_counts(pipeline: str) -> dict[str, Any]:
    """What ``<pipeline>``'s tables hold on ``main`` (read with plain pyiceberg from the exported settings)."""
    from pyiceberg.catalog import load_catalog
    from pyiceberg.exceptions import NoSuchTableError

    catalog = load_catalog()
    out: dict[str, Any] = {}
    for name in ("raw", "raw_dead_letters", "raw_quarantine", "features"):
        if not catalog.table_exists(f"{pipeline}.{name}"):
            continue
        try:
            table = catalog.load_table(f"{pipeline}.{name}")
        except NoSuchTableError:
            continue
        head = table.current_snapshot()
        summary = dict(head.summary.additional_properties) if head and head.summary else {}
        out[name] = int(summary.get("total-records", 0))
        if name == "raw":
            ids = table.scan(selected_fields=("customer_id",)).to_arrow().column("customer_id").to_pylist()
            out["raw_distinct_ids"] = len(set(ids))
            out["raw_snapshot"] = head.snapshot_id if head else None
            out["kafka_cursor"] = summary.get("mlops.cursor.kafka")
    return out


def drift_story(bag: Any, bootstrap: str) -> tuple[bool, dict[str, str]]:
    """Shifted data arrives, the drift check fires, the retraining run decides whether a new champion is promoted."""
    import mlflow

    client = mlflow.MlflowClient()
    before = client.get_model_version_by_alias("churn", "champion")
    shifted = 6_000
    print(f"3b. a price rise and an outage: producing {shifted} shifted churn events (higher charges, more support "
          "calls); running churn__ingest, then DAG churn__drift")  # fmt: skip
    seed_kafka(bootstrap, shifted, 0, seed=int(time.time()) + 1, shifted=True)
    ingest, _, _ = run_dag(bag, "churn__ingest")
    print(f"   churn__ingest: {ingest.state}; {lake_counts('churn')}")
    started = time.monotonic()
    drift_run = bag.dags["churn__drift"].test()
    tis = {t.task_id: t for t in drift_run.get_task_instances()}
    summary = tis["drift_check"].xcom_pull(task_ids="drift_check") or {}
    print(f"   run {drift_run.run_id}: {drift_run.state} in {time.monotonic() - started:.1f}s; "
          f"tasks {({k: t.state for k, t in tis.items()})}")  # fmt: skip
    if summary:
        print(f"   drift share {summary['drift_share']:.2f} over {summary['columns_checked']} model inputs; drifted "
              f"{', '.join(f'{c} ({v:.3f})' for c, v in summary['drifted_columns'].items()) or 'none'}; "
              f"prediction drift {summary['prediction_drift']}")  # fmt: skip
        print(f"   Evidently report: {summary['report_uri']} (task link 'Drift report'; MLflow experiment "
              f"churn-monitoring, run {summary['mlflow_run_id']})")  # fmt: skip
    signal = tis["drift_signal"]
    print(f"   drift_signal: {signal.state} -> Asset mlops_ops.churn.drift, on which churn__training is scheduled")
    if not summary.get("drifted"):
        print("   no drift found: the story did not hold")
        return False, {}
    print(
        "3c. the retraining run of churn__training (under `make ui` the scheduler starts it on that Asset event;"
        " it read only the new batch into churn.features)"
    )
    started = time.monotonic()
    retrain = bag.dags["churn__training"].test(run_conf={"reason": "drift: " + ", ".join(summary["drifted_columns"])})
    states = {t.task_id: t.state for t in retrain.get_task_instances()}
    rtis = {t.task_id: t for t in retrain.get_task_instances()}
    verdict = rtis["evaluate"].xcom_pull(task_ids="evaluate") if "evaluate" in rtis else None
    built = rtis["preprocess"].xcom_pull(task_ids="preprocess") if "preprocess" in rtis else None
    if built:
        print(f"   features: {built['mode']} build, {built['rows_in']} new raw rows read -> {built['features']}")
    after = client.get_model_version_by_alias("churn", "champion")
    print(f"   run {retrain.run_id}: {retrain.state} in {time.monotonic() - started:.1f}s; tasks {states}")
    if verdict:
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in verdict["metrics"].items())
        print(f"   challenger v{verdict['version']}: {metrics}; "
              f"{'blessed' if verdict['blessed'] else 'not blessed: ' + '; '.join(verdict['reasons'])}")  # fmt: skip
    print(f"   champion: v{before.version} before, v{after.version} after "
          f"({'a new champion' if after.version != before.version else 'the champion stays'})")  # fmt: skip
    ok = drift_run.state == "success" and retrain.state == "success" and states.get("train") == "success"
    ok = ok and signal.state in ("success", "skipped") and states.get("promote") in ("success", "skipped")
    return ok, states


def main() -> int:
    stack = EmbeddedStack(project=Path.cwd())
    os.environ.update(stack.environment())
    unhealthy = [s.name for s in stack.status() if not s.healthy]
    if unhealthy:
        print(f"stack not healthy ({', '.join(unhealthy)}): run 'make up' first", file=sys.stderr)
        return 1
    good, bad = 20_000, 150
    bootstrap = f"127.0.0.1:{stack.settings.ports['kafka']}"
    print(f"1. producing {good} churn events and {bad} malformed messages to Kafka topic '{TOPIC}' at {bootstrap}")
    seed_kafka(bootstrap, good, bad, seed=int(time.time()))

    from airflow.dag_processing.dagbag import DagBag

    print("2. running DAG churn__ingest, then churn__training (built from dags/pipelines/churn.yaml)")
    bag = DagBag(dag_folder=str(Path.cwd() / "dags"))
    if bag.import_errors:
        print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
        return 1
    start = lake_counts("churn")  # a stack kept from an earlier demo already holds rows
    ingest, result, elapsed = run_dag(bag, "churn__ingest")
    print(f"   churn__ingest {ingest.run_id}: {ingest.state} in {elapsed:.1f}s; ingest_kafka returned "
          f"{ {k: v for k, v in (result or {}).items() if k != 'offsets'} }")  # fmt: skip
    before = lake_counts("churn")
    run, _, elapsed = run_dag(bag, "churn__training")
    print(f"   churn__training {run.run_id}: {run.state} in {elapsed:.1f}s")
    ok = ingest.state == "success" and result is not None and result["rows"] == good and result["bad"] == bad
    s3 = stack.environment()["AIRFLOW_CONN_AWS_DEFAULT"]
    endpoint = json.loads(s3)["extra"]["endpoint_url"]
    print(
        "3. what landed (read with plain pyiceberg: `load_catalog()` and the variables `mlops-ops stack env` exports)"
    )
    print(f"   churn.raw: {before.get('raw')} rows on main, {before.get('raw_distinct_ids')} distinct ids; this batch "
          f"{result and result['rows']} (expected {good}); dead letters: {result and result['bad']} (expected {bad}), "
          f"table churn.raw_dead_letters holds {before.get('raw_dead_letters', 0)}")  # fmt: skip
    print(f"   Kafka positions in the snapshot summary: {before.get('kafka_cursor')}")
    states = {t.task_id: t.state for t in [*ingest.get_task_instances(), *run.get_task_instances()]}
    gate = next((t for t in ingest.get_task_instances() if t.task_id == "quality_gate"), None)
    verdict = (gate.xcom_pull(task_ids="quality_gate", key="quality") or {}) if gate else {}
    pre = next((t for t in run.get_task_instances() if t.task_id == "preprocess"), None)
    features = pre.xcom_pull(task_ids="preprocess") if pre else None
    print(f"   quality gate (GX suite churn_raw) on the staged batch: {states.get('quality_gate')}; "
          + "; ".join(f"{v.get('evaluated')} expectations on {v.get('rows')} rows ({v.get('engine')}), "
                      f"{v.get('warning_count')} warning(s); published as snapshot {v.get('snapshot_id')}"
                      for v in verdict.values()))  # fmt: skip
    if gate is not None:
        print(f"   Data Docs: {gate.xcom_pull(task_ids='quality_gate', key='data_docs_url')} (Airflow UI, task link)")
    print(f"   features (Spark, {features and features['mode']}): {states.get('preprocess')}; "
          f"{features and features['features']}; rows per split {features and features['rows']}")  # fmt: skip
    ok = ok and states.get("quality_gate") == "success" and states.get("preprocess") == "success"
    ok = ok and before.get("raw") == before.get("raw_distinct_ids") == start.get("raw", 0) + good
    ok = ok and before.get("raw_dead_letters", 0) - start.get("raw_dead_letters", 0) == bad
    tis = {t.task_id: t for t in run.get_task_instances()}
    trained = tis["train"].xcom_pull(task_ids="train") if "train" in tis else None
    verdict_ = tis["evaluate"].xcom_pull(task_ids="evaluate") if "evaluate" in tis else None
    print(f"   training (torch MLP, subprocess): {states.get('train')}; registered {trained and trained['model_uri']}")
    if verdict_:
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in verdict_["metrics"].items())
        print(
            f"   evaluation vs champion v{verdict_['champion_version']}: {metrics}; "
            f"{'blessed' if verdict_['blessed'] else 'not blessed: ' + '; '.join(verdict_['reasons'])}"
        )
    import mlflow

    champion = mlflow.MlflowClient().get_model_version_by_alias("churn", "champion")
    print(f"   promotion: {states.get('promote')}; models:/churn@champion is version {champion.version}, trained on "
          f"{champion.tags.get('mlops_ops.features_snapshot')}")  # fmt: skip
    ok = ok and states.get("train") == "success" and states.get("evaluate") == "success"
    ok = ok and states.get("promote") in ("success", "skipped")

    drift_ok, retrain_states = drift_story(bag, bootstrap)
    ok = ok and drift_ok

    from mlops_ops.stack.config import LANDING_BUCKET
    from mlops_ops.stack.services import s3_client

    good_rows, corrupt = seed_s3_exports(s3_client(stack.settings), LANDING_BUCKET, files=3, rows=2_000,
                                         seed=int(time.time()))  # fmt: skip
    print(f"4. uploaded 3 CSV exports ({good_rows} rows) and 1 corrupt file to s3://{LANDING_BUCKET}/churn/exports/;")
    print("   running DAG churn_exports__ingest (built from dags/pipelines/churn_exports.yaml)")
    s3_run, s3_result, elapsed = run_dag(bag, "churn_exports__ingest")
    print(f"   run {s3_run.run_id}: {s3_run.state} in {elapsed:.1f}s; ingest_s3 returned {s3_result}")
    exports = lake_counts("churn_exports")
    print(f"   churn_exports.raw: {exports.get('raw')} rows; dead letters: {exports.get('raw_dead_letters', 0)} "
          f"(the corrupt file {corrupt})")  # fmt: skip
    again, _, _ = run_dag(bag, "churn_exports__ingest")
    again_states = {t.task_id: t.state for t in again.get_task_instances()}
    print(f"   second run with nothing new: {again_states}")
    ok = (
        ok
        and s3_run.state == "success"
        and s3_result is not None
        and s3_result["rows"] == good_rows
        and s3_result["dead"] == 1
        and again_states == {"ingest_s3": "skipped"}
    )
    print("5. where to look")
    print(
        "   runs: churn__ingest + churn__training (first model), churn__drift (drift found), churn__training "
        f"(retraining: {retrain_states.get('promote', '-')} promotion), churn_exports__ingest"
    )
    print(f"   lake: Iceberg tables churn.raw, churn.raw_dead_letters, churn.features, churn.drift_checks, "
          f"churn_exports.raw; `mlops-ops lake show --pipeline churn`; data on S3 {endpoint}")  # fmt: skip
    print(f"   MLflow UI: {os.environ['MLFLOW_TRACKING_URI']}")
    print("   Airflow UI: make ui  (http://127.0.0.1:8080)")
    print("   stop the stack: make down")
    print("DEMO OK" if ok else "DEMO FAILED: the lake does not hold exactly the produced rows")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
