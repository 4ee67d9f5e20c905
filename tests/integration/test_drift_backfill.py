"""Backfilling drift checks does not storm retraining: Airflow's own backfill (run by the real scheduler, PostgreSQL
metadata DB) over 7 past days records 7 drift checks and starts 0 training runs; the same 7 days as normal runs
start retraining.

The lake holds 9 days of history: a champion trained on day -9's data, and a drifted batch published at noon of each
day since (Iceberg snapshots carry those days' commit times: the seeding runs with pyiceberg's clock set back). The
drift DAG checks a ``1d`` window ending at a backfill or manual run's data interval, so a run for a past day sees that
day's batch.
"""

from __future__ import annotations

import time as real_time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from mlops_ops.executors.preload import DEFAULT_MODULES
from mlops_ops.testing.airflow_services import AirflowServices
from tests.integration.churn_data import clean_rows, kafka_pipeline_spec, land_batch, pipeline_services, to_csv
from tests.integration.lake_helpers import committed_rows, pipeline_tables
from tests.integration.test_drift import shifted_rows

DAYS = 7
TRAIN = "  trainer: sklearn\n  params: {max_iter: 30}"
DRIFT = "drift:\n  schedule: '@daily'\n  window: 1d\n  cooldown: 0m\n"


class _Clock:
    """pyiceberg stamps snapshots with ``time.time()``: this one answers a chosen moment."""

    def __init__(self) -> None:
        self.now: float | None = None

    def time(self) -> float:
        return self.now if self.now is not None else real_time.time()


def _midnight(days_ago: int) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days_ago)


@pytest.fixture(scope="module")
def history(postgres_stack, tmp_path_factory) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    import mlflow
    import pyiceberg.table.snapshots as snapshots

    from mlops_ops.hooks.spark import SparkHook
    from mlops_ops.lake.features import FeatureBuild, build_features
    from mlops_ops.training.run import build_parser, train_and_register

    stack = postgres_stack
    names = {"pipeline": f"bf_{uuid.uuid4().hex[:6]}", "topic": f"bf-{uuid.uuid4().hex[:6]}",
             "model": f"bf-{uuid.uuid4().hex[:6]}"}  # fmt: skip
    tables = pipeline_tables(names["pipeline"])
    clock = _Clock()
    original = snapshots.time
    snapshots.time = clock  # type: ignore[assignment]
    try:
        clock.now = (_midnight(DAYS + 2) + timedelta(hours=12)).timestamp()
        land_batch(stack, tables, to_csv(clean_rows(4_000, seed=41)))
        spark = SparkHook(app_name="mlops-ops-tests").get_conn()
        build = FeatureBuild("customer_id", transform="tests.integration.feature_transforms:churn_features")
        manifest = build_features(spark, tables, build).ref
        for day in range(DAYS + 1, 0, -1):  # a drifted batch at noon of each day since
            clock.now = (_midnight(day) + timedelta(hours=12)).timestamp()
            land_batch(stack, tables, to_csv(shifted_rows(800, seed=50 + day, start=100_000 * day)))
    finally:
        snapshots.time = original  # type: ignore[assignment]
    args = build_parser().parse_args(["--features", manifest, "--model", '{"task": "binary", "target": "churned"}',
                                      "--trainer", "sklearn", "--params", '{"max_iter": 40}',
                                      "--model-name", names["model"]])  # fmt: skip
    mlflow.MlflowClient().set_registered_model_alias(names["model"], "champion", train_and_register(args)["version"])

    root = tmp_path_factory.mktemp("backfill")
    spec = kafka_pipeline_spec(**names, train=TRAIN).replace("drift:\n  schedule: null\n", DRIFT)
    spec += f"start_date: {_midnight(DAYS + 20).date().isoformat()}\n"
    assert DRIFT in spec
    services = pipeline_services(stack, root, names["pipeline"], spec)
    services.start()
    try:
        yield {**names, "services": services, "tables": tables}
    finally:
        services.stop()


def _drift_events(services: AirflowServices, drift_dag: str) -> list[dict[str, Any]]:
    """Asset events the drift DAG emitted (only its signal task has an outlet: the drift Asset)."""
    status, body = services.request("GET", f"/api/v2/assets/events?source_dag_id={quote(drift_dag)}&limit=100")
    assert status == 200, body
    return list(body["asset_events"])


def _done(services: AirflowServices, dag_id: str, run_type: str, count: int) -> list[dict[str, Any]] | None:
    runs = [r for r in services.runs(dag_id) if r["run_type"] == run_type]
    finished = [r for r in runs if r["state"] in ("success", "failed")]
    return finished if len(finished) == count else None


@pytest.mark.timeout(1800)
def test_a_drift_backfill_records_history_and_starts_no_retraining(history: dict[str, Any]) -> None:
    services: AirflowServices = history["services"]
    pipeline = history["pipeline"]
    drift_dag, training = f"{pipeline}__drift", f"{pipeline}__training"
    for dag_id in (drift_dag, training):
        services.wait_for(f"{dag_id} parsed", lambda d=dag_id: services.request("GET", f"/api/v2/dags/{d}")[0] == 200)

    # Airflow's backfill over the 7 past days, run by the scheduler
    body = {"dag_id": drift_dag, "from_date": _midnight(DAYS).isoformat(), "to_date": _midnight(1).isoformat(),
            "reprocess_behavior": "none", "max_active_runs": 2, "run_backwards": False, "dag_run_conf": {}}  # fmt: skip
    status, backfill = services.request("POST", "/api/v2/backfills", body)
    assert status == 200, backfill
    runs = services.wait_for("the backfill runs", lambda: _done(services, drift_dag, "backfill", DAYS),
                             timeout=1200, every=3)  # fmt: skip
    for run in runs:
        states = services.task_states(drift_dag, run["dag_run_id"])
        assert states == {"drift_check": "success", "drift_signal": "skipped"}, (run["logical_date"], states)
    checks = [c for c in committed_rows(history["tables"], "drift_checks") if c["backfill"]]
    assert len(checks) == DAYS and all(c["drifted"] for c in checks), checks
    assert all(c["rows"] == 800 for c in checks)  # each past day's window held that day's batch only
    assert len({c["raw_snapshot"] for c in checks}) == DAYS
    services.wait_for("the scheduler to act on every event", lambda: services.asset_events_handled(training))
    backfill_runs = {r["dag_run_id"] for r in runs}
    assert [e for e in _drift_events(services, drift_dag) if e["source_run_id"] in backfill_runs] == []
    # (with catchup off, Airflow 3.3 also schedules today's run when the DAG appears: a normal run, which may signal)
    assert not [r for r in services.runs(training) if _started_by(services, training, r) & backfill_runs]

    # the same days as normal runs (manual, each with that day's logical date): they signal retraining
    for day in range(DAYS, 0, -1):
        logical = _midnight(day) + timedelta(minutes=1)  # a minute past the backfill run of that day
        status, run = services.request("POST", f"/api/v2/dags/{drift_dag}/dagRuns",
                                       {"logical_date": logical.isoformat(), "conf": {}})  # fmt: skip
        assert status == 200, run
    manual = services.wait_for("the normal runs", lambda: _done(services, drift_dag, "manual", DAYS),
                               timeout=1200, every=3)  # fmt: skip
    assert all(services.task_states(drift_dag, r["dag_run_id"])["drift_signal"] == "success" for r in manual)
    manual_runs = {r["dag_run_id"] for r in manual}
    events = [e for e in _drift_events(services, drift_dag) if e["source_run_id"] in manual_runs]
    assert len(events) == DAYS and all("report_uri" in e["extra"] for e in events)

    def retrained() -> list[dict[str, Any]]:
        return [r for r in services.runs(training) if _started_by(services, training, r) & manual_runs]

    started = services.wait_for("a retraining run started by the normal runs", retrained, timeout=300, every=3)
    assert all(r["run_type"] == "asset_triggered" for r in started)
    checks = committed_rows(history["tables"], "drift_checks")
    assert sum(c["backfill"] for c in checks) == DAYS and sum(not c["backfill"] for c in checks) >= DAYS
    # the deployment's executor (WarmLocalExecutor) imported the engines once, before its workers forked
    scheduler_log = (services.home / "scheduler.log").read_text(errors="replace")
    n = len(DEFAULT_MODULES)  # all of them: the full install has every extra
    assert f"mlops-ops: preloaded {n} of {n} modules for task processes" in scheduler_log


def _started_by(services: AirflowServices, dag_id: str, run: dict[str, Any]) -> set[str]:
    """The runs whose Asset events started ``run``."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run['dag_run_id'], safe='')}/upstreamAssetEvents"
    status, body = services.request("GET", path)
    assert status == 200, body
    return {str(e["source_run_id"]) for e in body["asset_events"]}
