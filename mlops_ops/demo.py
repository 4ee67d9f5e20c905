"""``python -m mlops_ops.demo``: the main job on the embedded stack, end to end, through Airflow's own scheduler.

Airflow runs as in a deployment: scheduler, DAG processor, triggerer and API server (the LocalExecutor with the
engines preloaded: ``mlops_ops.executors.local.WarmLocalExecutor``) on the stack's PostgreSQL
(``mlops-ops stack up --postgres``; ``make demo`` does that). The demo only produces data, unpauses DAGs,
presses "Trigger" where a person would (through the REST API) and reads the results.

1. Seeds realistic churn events (with a few malformed ones) into Kafka; ``churn__ingest`` (built from
   ``dags/pipelines/churn.yaml``; the only writer of the Iceberg table ``churn.raw``: stage, audit with GX, publish)
   runs on its schedule; the first ``churn__training`` run (incremental features, torch training, evaluation,
   promotion) is triggered. Checks that exactly the produced rows landed once and the malformed ones are in
   ``churn.raw_dead_letters``.
2. Shifted events arrive and are ingested; ``churn__drift`` runs on its schedule, finds drift and emits the Asset
   event ``mlops_ops.churn.drift``; the scheduler starts the retraining run of ``churn__training`` from that event
   (``run_type`` asset_triggered, the triggering event shown).
3. Drops CSV exports (one of them corrupt) into S3; ``churn_exports__ingest`` ingests the good files and
   dead-letters the corrupt one; a second run finds nothing new.
Prints the champion's lineage (Kafka offsets, raw batches and their gate verdicts, snapshots, training run) and where
to look; exits non-zero if any of that did not hold.
"""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlops_ops.stack import EmbeddedStack
from mlops_ops.testing.airflow_services import AirflowServices

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


class Airflow:
    """The REST calls of the story (what a person does in the UI), on Airflow's own processes."""

    def __init__(self, services: AirflowServices) -> None:
        self.services = services

    def wait_parsed(self, dag_ids: list[str]) -> None:
        for dag_id in dag_ids:
            self.services.wait_for(f"{dag_id} to be parsed",
                                   lambda d=dag_id: self.services.request("GET", f"/api/v2/dags/{d}")[0] == 200,
                                   timeout=300)  # fmt: skip

    def pause(self, dag_id: str, paused: bool) -> None:
        status, body = self.services.request("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})
        if status != 200:
            raise RuntimeError(f"could not {'pause' if paused else 'unpause'} {dag_id}: {body}")

    def run_ids(self, dag_id: str) -> set[str]:
        return {r["dag_run_id"] for r in self.services.runs(dag_id)}

    def trigger(self, dag_id: str, conf: dict[str, Any] | None = None) -> str:
        status, body = self.services.request("POST", f"/api/v2/dags/{dag_id}/dagRuns",
                                             {"logical_date": None, "conf": conf or {}})  # fmt: skip
        if status != 200:
            raise RuntimeError(f"could not trigger {dag_id}: {body}")
        return str(body["dag_run_id"])

    def scheduled_or_triggered(self, dag_id: str, before: set[str]) -> str:
        """Unpause: the scheduler starts the latest interval's run (catchup off) unless an earlier demo ran it,
        in which case the run is triggered as a person would."""
        self.pause(dag_id, False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            new = self.run_ids(dag_id) - before
            if new:
                return sorted(new)[0]
            time.sleep(1)
        return self.trigger(dag_id)

    def finished(self, dag_id: str, run_id: str, timeout: float = 900) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            run = next((r for r in self.services.runs(dag_id) if r["dag_run_id"] == run_id), None)
            return run if run and run["state"] in ("success", "failed") else None

        run: dict[str, Any] = self.services.wait_for(f"{dag_id} run {run_id}", done, timeout=timeout, every=2)
        return run

    def states(self, dag_id: str, run_id: str) -> dict[str, str]:
        return self.services.task_states(dag_id, run_id)

    def durations(self, dag_id: str, run_id: str) -> str:
        """Each task's run time from Airflow's metadata (start to end of its last try), and the run's from its first
        task's start to its last task's end, as ``task 1.2s, ...; run 9.8s``."""
        from urllib.parse import quote

        _, body = self.services.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        ran = [t for t in body["task_instances"] if t.get("start_date") and t.get("end_date")]
        if not ran:
            return "no task ran"
        spans = {t["task_id"]: (datetime.fromisoformat(t["start_date"]), datetime.fromisoformat(t["end_date"]))
                 for t in ran}  # fmt: skip
        whole = max(end for _, end in spans.values()) - min(start for start, _ in spans.values())
        tasks = ", ".join(f"{task} {(end - start).total_seconds():.1f}s" for task, (start, end) in spans.items())
        return f"{tasks}; run {whole.total_seconds():.1f}s"

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        from urllib.parse import quote

        path = (f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/"
                f"{key}?deserialize=true")  # fmt: skip
        status, body = self.services.request("GET", path)
        return body.get("value") if status == 200 and isinstance(body, dict) else None

    def triggering_events(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        from urllib.parse import quote

        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/upstreamAssetEvents"
        status, body = self.services.request("GET", path)
        return list(body.get("asset_events", [])) if status == 200 else []


def first_model(af: Airflow, bootstrap: str, good: int, bad: int) -> tuple[bool, dict[str, Any]]:
    """Ingest on the schedule, then the first training run (triggered: the training DAG runs on drift or control)."""
    import mlflow

    start = lake_counts("churn")  # a stack kept from an earlier demo already holds rows
    before = af.run_ids("churn__ingest")
    print(f"1. producing {good} churn events and {bad} malformed messages to Kafka topic '{TOPIC}' at {bootstrap}")
    seed_kafka(bootstrap, good, bad, seed=int(time.time()))
    print("2. unpausing churn__ingest (schedule @hourly, catchup off: the scheduler runs the latest interval now)")
    started = time.monotonic()
    ingest = af.scheduled_or_triggered("churn__ingest", before)
    run = af.finished("churn__ingest", ingest)
    states = af.states("churn__ingest", ingest)
    result = af.xcom("churn__ingest", ingest, "ingest_kafka") if states.get("ingest_kafka") == "success" else None
    print(f"   churn__ingest {ingest} ({run['run_type']}): {run['state']} in {time.monotonic() - started:.1f}s; "
          f"tasks {states}")  # fmt: skip
    print(f"   ingest_kafka returned { ({k: v for k, v in (result or {}).items() if k != 'offsets'}) }")
    verdict = af.xcom("churn__ingest", ingest, "quality_gate", key="quality") or {}
    print("   quality gate (GX suite churn_raw) on the staged batch: "
          + "; ".join(f"{v.get('evaluated')} expectations on {v.get('rows')} rows ({v.get('engine')}), "
                      f"{v.get('warning_count')} warning(s); published as snapshot {v.get('snapshot_id')}"
                      for v in verdict.values()))  # fmt: skip
    docs = af.xcom("churn__ingest", ingest, "quality_gate", key="data_docs_url")
    print(f"   Data Docs: {docs} (Airflow UI, task link)")
    after = lake_counts("churn")
    print("   what landed (read with plain pyiceberg: `load_catalog()` and the variables of `mlops-ops stack env`):")
    print(f"   churn.raw: {after.get('raw')} rows on main, {after.get('raw_distinct_ids')} distinct ids "
          f"(+{after.get('raw', 0) - start.get('raw', 0)}, expected +{good}); churn.raw_dead_letters "
          f"+{after.get('raw_dead_letters', 0) - start.get('raw_dead_letters', 0)} (expected +{bad}); Kafka "
          f"positions in the snapshot summary: {after.get('kafka_cursor')}")  # fmt: skip
    ok = run["state"] == "success" and result is not None
    ok = ok and after.get("raw") == after.get("raw_distinct_ids") == start.get("raw", 0) + good
    ok = ok and after.get("raw_dead_letters", 0) - start.get("raw_dead_letters", 0) == bad

    print("3. unpausing churn__training (scheduled on the drift Asset and the control topic) and triggering its first "
          "run, as a person does with the Trigger button")  # fmt: skip
    af.pause("churn__training", False)
    started = time.monotonic()
    training = af.trigger("churn__training", {"reason": "first model"})
    run = af.finished("churn__training", training)
    states = af.states("churn__training", training)
    features = af.xcom("churn__training", training, "preprocess")
    trained = af.xcom("churn__training", training, "train")
    evaluated = af.xcom("churn__training", training, "evaluate")
    print(f"   churn__training {training}: {run['state']} in {time.monotonic() - started:.1f}s; tasks {states}")
    if features:
        print(f"   features (Spark, {features['mode']}): {features['features']}; rows per split {features['rows']}")
    print(f"   training (torch MLP, subprocess): registered {trained and trained['model_uri']}")
    if evaluated:
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in evaluated["metrics"].items())
        verdict = "blessed" if evaluated["blessed"] else "not blessed: " + "; ".join(evaluated["reasons"])
        print(f"   evaluation vs champion v{evaluated['champion_version']}: {metrics}; {verdict}")
    champion = mlflow.MlflowClient().get_model_version_by_alias("churn", "champion")
    print(f"   promotion: {states.get('promote')}; models:/churn@champion is version {champion.version}, trained on "
          f"{champion.tags.get('mlops_ops.features_snapshot')}")  # fmt: skip
    ok = ok and run["state"] == "success" and states.get("train") == "success"
    ok = ok and states.get("evaluate") == "success" and states.get("promote") in ("success", "skipped")
    return ok, {"champion": champion.version}


def drift_story(af: Airflow, bootstrap: str) -> tuple[bool, dict[str, str]]:
    """Shifted data arrives, the scheduled drift check fires, the scheduler starts the retraining run from the
    drift Asset event."""
    import mlflow

    client = mlflow.MlflowClient()
    before = client.get_model_version_by_alias("churn", "champion")
    shifted = 6_000
    print(f"4. a price rise and an outage: producing {shifted} shifted churn events (higher charges, more support "
          "calls); churn__ingest is triggered")  # fmt: skip
    seed_kafka(bootstrap, shifted, 0, seed=int(time.time()) + 1, shifted=True)
    ingest = af.trigger("churn__ingest")
    run = af.finished("churn__ingest", ingest)
    print(f"   churn__ingest {ingest}: {run['state']}; {lake_counts('churn')}")
    trainings = af.run_ids("churn__training")
    print("5. unpausing churn__drift (schedule @daily: the scheduler runs the latest interval)")
    started = time.monotonic()
    drift = af.scheduled_or_triggered("churn__drift", af.run_ids("churn__drift"))
    drift_run = af.finished("churn__drift", drift)
    states = af.states("churn__drift", drift)
    summary = af.xcom("churn__drift", drift, "drift_check") or {}
    print(f"   run {drift} ({drift_run['run_type']}): {drift_run['state']} in {time.monotonic() - started:.1f}s; "
          f"tasks {states}")  # fmt: skip
    print(f"   task times (Airflow's metadata): {af.durations('churn__drift', drift)}")
    if summary:
        print(f"   drift share {summary['drift_share']:.2f} over {summary['columns_checked']} model inputs; drifted "
              f"{', '.join(f'{c} ({v:.3f})' for c, v in summary['drifted_columns'].items()) or 'none'}; "
              f"prediction drift {summary['prediction_drift']}")  # fmt: skip
        print(f"   Evidently report: {summary['report_uri']} (task link 'Drift report'; MLflow experiment "
              f"churn-monitoring, run {summary['mlflow_run_id']})")  # fmt: skip
    print(f"   drift_signal: {states.get('drift_signal')} -> Asset mlops_ops.churn.drift")
    if not summary.get("drifted") or states.get("drift_signal") != "success":
        print("   no drift signal: the story did not hold")
        return False, {}
    print("6. the scheduler starts churn__training from that Asset event (the demo triggers nothing here)")
    started = time.monotonic()
    retrain = af.services.wait_for(
        "the drift-triggered training run",
        lambda: next((r for r in af.services.runs("churn__training") if r["dag_run_id"] not in trainings), None),
        timeout=300, every=2,
    )  # fmt: skip
    done = af.finished("churn__training", retrain["dag_run_id"])
    events = af.triggering_events("churn__training", retrain["dag_run_id"])
    names = [e.get("name") or e.get("uri") for e in events]
    states = af.states("churn__training", retrain["dag_run_id"])
    verdict = af.xcom("churn__training", retrain["dag_run_id"], "evaluate")
    built = af.xcom("churn__training", retrain["dag_run_id"], "preprocess")
    print(f"   run {retrain['dag_run_id']}: run_type {done['run_type']}, triggered by Asset event(s) {names}; "
          f"{done['state']} in {time.monotonic() - started:.1f}s; tasks {states}")  # fmt: skip
    print(f"   task times (Airflow's metadata): {af.durations('churn__training', retrain['dag_run_id'])}")
    if built:
        print(f"   features: {built['mode']} build, {built['rows_in']} new raw rows read -> {built['features']}")
    after = client.get_model_version_by_alias("churn", "champion")
    if verdict:
        metrics = ", ".join(f"{k} {v:.3f}" for k, v in verdict["metrics"].items())
        print(f"   challenger v{verdict['version']}: {metrics}; "
              f"{'blessed' if verdict['blessed'] else 'not blessed: ' + '; '.join(verdict['reasons'])}")  # fmt: skip
    print(f"   champion: v{before.version} before, v{after.version} after "
          f"({'a new champion' if after.version != before.version else 'the champion stays'})")  # fmt: skip
    ok = drift_run["state"] == "success" and done["state"] == "success" and states.get("train") == "success"
    ok = ok and done["run_type"] == "asset_triggered" and "mlops_ops.churn.drift" in names
    ok = ok and states.get("promote") in ("success", "skipped")
    return ok, states


def s3_story(af: Airflow, stack: EmbeddedStack) -> bool:
    from mlops_ops.stack.config import LANDING_BUCKET
    from mlops_ops.stack.services import s3_client

    good_rows, corrupt = seed_s3_exports(s3_client(stack.settings), LANDING_BUCKET, files=3, rows=2_000,
                                         seed=int(time.time()))  # fmt: skip
    print(f"7. uploaded 3 CSV exports ({good_rows} rows) and 1 corrupt file to s3://{LANDING_BUCKET}/churn/exports/;")
    print("   unpausing churn_exports__ingest (built from dags/pipelines/churn_exports.yaml)")
    start = lake_counts("churn_exports")
    started = time.monotonic()
    first = af.scheduled_or_triggered("churn_exports__ingest", af.run_ids("churn_exports__ingest"))
    run = af.finished("churn_exports__ingest", first)
    result = af.xcom("churn_exports__ingest", first, "ingest_s3")
    print(f"   run {first}: {run['state']} in {time.monotonic() - started:.1f}s; ingest_s3 returned {result}")
    exports = lake_counts("churn_exports")
    print(f"   churn_exports.raw: {exports.get('raw')} rows; dead letters: {exports.get('raw_dead_letters', 0)} "
          f"(the corrupt file {corrupt})")  # fmt: skip
    again = af.trigger("churn_exports__ingest")
    af.finished("churn_exports__ingest", again)
    again_states = af.states("churn_exports__ingest", again)
    print(f"   second run with nothing new: {again_states}")
    return (
        run["state"] == "success"
        and result is not None
        and exports.get("raw", 0) - start.get("raw", 0) == good_rows
        and exports.get("raw_dead_letters", 0) - start.get("raw_dead_letters", 0) == 1
        and again_states == {"ingest_s3": "skipped"}
    )


DEMO_DAGS = ["churn__ingest", "churn__training", "churn__drift", "churn_exports__ingest"]


def lineage_story() -> bool:
    """What the champion was made from, as `mlops-ops lineage churn@<version>` prints it: it must name the Kafka
    offsets and the snapshot ids that fed it."""
    import mlflow
    from pyiceberg.catalog import load_catalog

    from mlops_ops.lineage.chain import chain_of, render

    client = mlflow.MlflowClient()
    champion = client.get_model_version_by_alias("churn", "champion").version
    print(f"7b. lineage of the champion (`mlops-ops lineage churn@{champion}`, read from the records):")
    chain = chain_of(client, load_catalog(), "churn", str(champion), limit=5)
    for line in render(chain).splitlines():
        print(f"   {line}")
    offsets = [b.kafka_offsets for b in chain.batches if b.kafka_offsets]
    ok = bool(offsets) and chain.raw_snapshot is not None and bool(chain.features)
    if not ok:
        print("   the chain does not name the Kafka offsets and snapshots that fed the champion")
    return ok


def _earlier_demo_runs(database_url: str) -> bool:
    """Whether Airflow's metadata database already holds runs of the demo's DAGs (a stack kept from a demo)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("dag_run"):
                return False
            query = sa.text("SELECT count(*) FROM dag_run WHERE dag_id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True))  # fmt: skip
            return bool(conn.execute(query, {"ids": list(DEMO_DAGS)}).scalar())
    finally:
        engine.dispose()


def main() -> int:
    stack = EmbeddedStack(project=Path.cwd())
    env = stack.environment()
    os.environ.update(env)
    unhealthy = [s.name for s in stack.status() if not s.healthy]
    if unhealthy or not stack.settings.postgres:
        print(f"stack not ready ({', '.join(unhealthy) or 'no PostgreSQL'}): run 'make up' first", file=sys.stderr)
        return 1
    bootstrap = f"127.0.0.1:{stack.settings.ports['kafka']}"
    home = stack.paths.airflow_home
    print(f"0. starting Airflow's scheduler, DAG processor, triggerer and API server (WarmLocalExecutor) on "
          f"PostgreSQL (logs: {home}/<process>.log)")  # fmt: skip
    if _earlier_demo_runs(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]):
        print("   this stack holds an earlier demo's Airflow runs: resetting Airflow's metadata database (`airflow db "
              "reset`), or the drift cool-down (6h) that its retraining started would rightly hold this one back; "
              "the lake and MLflow keep their history")  # fmt: skip
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "reset", "--yes"], env={**os.environ, "AIRFLOW_HOME": str(home)}, check=True,
                       capture_output=True, timeout=600)  # fmt: skip
    services = AirflowServices(home, Path.cwd() / "dags", env, python_path=[Path.cwd()],
                               database_url=env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"],
                               extra_env={"AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                                          "AIRFLOW__CORE__PARALLELISM": "4"})  # fmt: skip
    services.start()
    try:
        af = Airflow(services)
        af.wait_parsed(DEMO_DAGS)
        for dag_id in DEMO_DAGS:  # a stack kept from an earlier demo: everything starts paused again
            af.pause(dag_id, True)
        ok, _ = first_model(af, bootstrap, good=20_000, bad=150)
        drift_ok, retrain_states = drift_story(af, bootstrap)
        s3_ok = s3_story(af, stack)
        for dag_id in DEMO_DAGS:
            af.pause(dag_id, True)
    finally:
        services.stop()
    lineage_ok = lineage_story()
    ok = ok and drift_ok and s3_ok and lineage_ok
    print("8. where to look")
    print(
        "   runs: churn__ingest + churn__training (first model), churn__drift (drift found), churn__training "
        f"(retraining from the drift Asset event: {retrain_states.get('promote', '-')} promotion), "
        "churn_exports__ingest; Airflow's metadata is in the stack's PostgreSQL"
    )
    endpoint = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"]
    print(f"   lake: Iceberg tables churn.raw, churn.raw_dead_letters, churn.features, churn.drift_checks, "
          f"churn_exports.raw; `mlops-ops lake show --pipeline churn`; data on S3 {endpoint}")  # fmt: skip
    print(f"   MLflow UI: {os.environ['MLFLOW_TRACKING_URI']}")
    print("   Airflow UI: make ui  (http://127.0.0.1:8080; the same PostgreSQL, so these runs are there)")
    print("   stop the stack: make down")
    print("DEMO OK" if ok else "DEMO FAILED: see the lines above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
