"""The drift check against the real stack: champion lineage from MLflow, Spark featurization, Evidently, the signal."""

from __future__ import annotations

import json
import random
import uuid
from typing import Any

import pytest

from mlops_ops.lake.features import FeatureBuild, build_features
from mlops_ops.lake.store import lake_path
from tests.integration.churn_data import clean_rows, land_batch, to_csv
from tests.integration.lake_helpers import committed_rows, pipeline_tables

DAG_FILE = """
from datetime import datetime

from airflow.sdk import DAG, Asset

from mlops_ops.operators.drift import DriftCheckOperator, DriftSignalOperator

drift = Asset(name="mlops_ops.{pipeline}.drift", group="mlops-ops")
with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1)):
    check = DriftCheckOperator(task_id="drift_check", pipeline="{pipeline}", model_name="{name}",
                               key_column="customer_id", target="churned",
                               transform="tests.integration.feature_transforms:churn_features",
                               lake="{lake}", retries=0)
    signal = DriftSignalOperator(task_id="drift_signal", cooldown="{cooldown}", inlets=[drift], outlets=[drift],
                                 retries=0)
    check >> signal
"""


def shifted_rows(n: int, *, seed: int, start: int) -> list[dict[str, Any]]:
    """New customers who pay much more and call support much more often (a price change, an outage)."""
    rng = random.Random(seed)
    rows = clean_rows(n, seed=seed, start=start)
    for row in rows:
        row["monthly_charges"] = round(row["monthly_charges"] * 1.8 + 40, 2)
        row["total_charges"] = round(row["monthly_charges"] * max(row["tenure_months"], 1), 2)
        row["support_calls"] = min(9, row["support_calls"] + rng.randint(3, 6))
    return rows


@pytest.fixture(scope="module")
def champion(stack, tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A lake with one batch, its features, and a registered champion trained on them by the real entrypoint."""
    import mlflow

    from mlops_ops.hooks.spark import SparkHook
    from mlops_ops.training.run import build_parser, train_and_register

    lake = str(tmp_path_factory.mktemp("drift") / "lake")
    pipeline = f"churn_{uuid.uuid4().hex[:6]}"
    tables = pipeline_tables(pipeline)
    land_batch(stack, tables, to_csv(clean_rows(6_000, seed=11)))
    spark = SparkHook(app_name="mlops-ops-tests").get_conn()
    build = FeatureBuild("customer_id", transform="tests.integration.feature_transforms:churn_features")
    manifest = build_features(spark, tables, build).ref
    name = f"churn-drift-{uuid.uuid4().hex[:6]}"
    args = build_parser().parse_args(["--features", manifest, "--model", '{"task": "binary", "target": "churned"}',
                                      "--trainer", "sklearn", "--params", '{"max_iter": 40}',
                                      "--model-name", name])  # fmt: skip
    result = train_and_register(args)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", result["version"])
    return {"lake": lake, "pipeline": pipeline, "name": name, "manifest": manifest}


def _run(tmp_path, monkeypatch, champion: dict[str, str], cooldown: str = "6h") -> dict[str, Any]:  # type: ignore[no-untyped-def]
    import airflow.settings
    from airflow.dag_processing.dagbag import DagBag

    dag_id = f"drift_{uuid.uuid4().hex[:6]}"
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    path = dags / f"{dag_id}.py"
    path.write_text(DAG_FILE.format(dag_id=dag_id, cooldown=cooldown, **champion))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(dags))
    run = DagBag(dag_folder=str(path)).dags[dag_id].test()
    return {t.task_id: t for t in run.get_task_instances()}


def _asset_events(name: str) -> list[Any]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        query = select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).where(AssetModel.name == name)
        return [(e.extra, e.timestamp) for e in session.scalars(query.order_by(AssetEvent.id))]


def test_drift_check_no_event_on_unshifted_data_then_event_with_the_drifted_columns(  # type: ignore[no-untyped-def]
    stack, champion, tmp_path, monkeypatch
) -> None:
    import mlflow

    raw = pipeline_tables(champion["pipeline"])
    drift_asset = f"mlops_ops.{champion['pipeline']}.drift"

    # nothing arrived since the champion was trained: a skip that says so, no report, no event
    first = _run(tmp_path, monkeypatch, champion)
    assert first["drift_check"].state == "skipped" and first["drift_signal"].state == "skipped"

    # new customers from the same distribution: checked, no drift, no event
    land_batch(stack, raw, to_csv(clean_rows(3_000, seed=12, start=100_000)))
    same = _run(tmp_path, monkeypatch, champion)
    assert same["drift_check"].state == "success" and same["drift_signal"].state == "skipped"
    summary = same["drift_check"].xcom_pull(task_ids="drift_check")
    assert not summary["drifted"] and summary["drifted_columns"] == {} and not summary["schema_drift"]
    assert summary["columns_checked"] == 4 and summary["current_rows"] == 3_000
    assert summary["prediction_drift"] is not None and not summary["prediction_drift"]["drifted"]
    assert summary["reference"] == champion["manifest"]  # the champion's own features snapshot (time travel)
    report = lake_path(summary["report_uri"])
    assert report.is_file() and b"<html" in report.read_bytes()[:2000].lower()
    saved = json.loads(lake_path(summary["report_uri"].replace("drift.html", "drift.json")).read_bytes())
    assert saved["drift_share"] == summary["drift_share"] and saved["evidently"]["metrics"]
    run = mlflow.MlflowClient().get_run(summary["mlflow_run_id"])
    assert run.data.metrics["drift_share"] == 0.0 and run.data.tags["mlops_ops.drifted"] == "false"
    assert _asset_events(drift_asset) == []

    # the same window is not checked twice
    again = _run(tmp_path, monkeypatch, champion)
    assert again["drift_check"].state == "skipped"

    # shifted data: drift on the charges and support calls, predictions drift, one event with the details
    land_batch(stack, raw, to_csv(shifted_rows(3_000, seed=13, start=200_000)))
    shifted = _run(tmp_path, monkeypatch, champion)
    assert shifted["drift_check"].state == "success" and shifted["drift_signal"].state == "success"
    summary = shifted["drift_check"].xcom_pull(task_ids="drift_check")
    assert summary["drifted"] and summary["drift_share"] >= 0.5
    assert {"monthly_charges", "charges_per_month", "support_calls"} <= set(summary["drifted_columns"])
    assert "tenure_months" not in summary["drifted_columns"]
    assert summary["prediction_drift"]["drifted"]
    ((extra, _),) = _asset_events(drift_asset)
    assert set(extra["drifted_columns"]) == set(summary["drifted_columns"])
    assert extra["report_uri"] == summary["report_uri"] and extra["drift_share"] == summary["drift_share"]

    # more shifted data within the cool-down: drift is reported, no second retraining signal
    land_batch(stack, raw, to_csv(shifted_rows(2_000, seed=14, start=300_000)))
    cooling = _run(tmp_path, monkeypatch, champion)
    assert cooling["drift_check"].state == "success" and cooling["drift_signal"].state == "skipped"
    assert cooling["drift_check"].xcom_pull(task_ids="drift_check")["drifted"]
    assert len(_asset_events(drift_asset)) == 1
    # every check is a row of <pipeline>.drift_checks, with the raw snapshot it covered
    checks = committed_rows(raw, "drift_checks")
    assert [c["drifted"] for c in sorted(checks, key=lambda c: c["checked_at"])] == [False, True, True]
    assert all(c["raw_snapshot"] and c["champion_version"] == "1" and not c["backfill"] for c in checks)


def test_drift_check_skips_without_a_champion(stack, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    lake = str(tmp_path / "lake")
    nobody = {"lake": lake, "pipeline": "nochamp", "name": f"never-trained-{uuid.uuid4().hex[:6]}"}
    tis = _run(tmp_path, monkeypatch, nobody)
    assert tis["drift_check"].state == "skipped" and tis["drift_signal"].state == "skipped"


def test_schema_change_is_reported_as_drift() -> None:
    import numpy as np
    import pandas as pd

    from mlops_ops.monitoring.drift import compute_drift

    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"a": rng.normal(size=2_000), "b": rng.normal(size=2_000)})
    current = pd.DataFrame({"a": rng.normal(size=1_000), "c": rng.normal(size=1_000)})
    result, _ = compute_drift(reference, current, drift_share=0.9)
    assert result.drifted and result.schema_drift
    assert result.missing_columns == ["b"] and result.new_columns == ["c"] and result.drifted_columns == {}
