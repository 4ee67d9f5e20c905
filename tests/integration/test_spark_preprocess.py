"""Spark preprocessing against a real local Spark session and a lake on local disk and on the embedded S3."""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow.parquet as pq
import pytest

from mlops_ops.exceptions import EmptyInputError
from mlops_ops.lake.features import FeatureBuild, build_features
from mlops_ops.lake.store import Dataset, lake_path
from tests.integration.churn_data import clean_rows, land_batch, to_csv

TRANSFORM = "tests.integration.feature_transforms:churn_features"
EMPTY = "tests.integration.feature_transforms:nothing_left"


@pytest.fixture(scope="module")
def spark(stack):  # type: ignore[no-untyped-def]
    from mlops_ops.hooks.spark import SparkHook

    return SparkHook("spark_default", app_name="mlops-ops-tests").get_conn()


@pytest.fixture(params=["local", "s3"])
def lake(request, tmp_path, stack) -> str:  # type: ignore[no-untyped-def]
    return str(tmp_path / "lake") if request.param == "local" else f"s3://mlops-lake/t-{uuid.uuid4().hex[:8]}"


def _split_of_each_key(manifest_uri: str) -> tuple[dict[str, str], dict[str, Any]]:
    import json

    manifest = json.loads(lake_path(manifest_uri, "aws_default").read_bytes())
    assignment: dict[str, str] = {}
    for split, files in manifest["splits"].items():
        for entry in files:
            with lake_path(entry["uri"], "aws_default").open("rb") as fh:
                table = pq.read_table(fh)
            assert table.num_rows == entry["rows"]
            for key in table.column("customer_id").to_pylist():
                assert key not in assignment, f"{key} appears twice"
                assignment[key] = split
    return assignment, manifest


def test_transform_builds_deterministic_splits(stack, spark, lake) -> None:  # type: ignore[no-untyped-def]
    raw = Dataset.at(lake, "churn", "raw", conn_id="aws_default")
    rows = clean_rows(3000)
    land_batch(stack, raw, to_csv(rows))
    build = FeatureBuild("customer_id", transform=TRANSFORM, params={"min_tenure": 1})
    first = build_features(spark, raw, Dataset.at(lake, "churn", "features_a", conn_id="aws_default"), build)
    second = build_features(spark, raw, Dataset.at(lake, "churn", "features_b", conn_id="aws_default"), build)
    a, manifest = _split_of_each_key(first.manifest_uri)
    b, _ = _split_of_each_key(second.manifest_uri)
    expected = {r["customer_id"] for r in rows if r["tenure_months"] >= 1}
    assert set(a) == expected
    assert a == b, "the same input must give the same split for every key"
    counts = {s: sum(1 for v in a.values() if v == s) for s in ("train", "validation", "test")}
    assert counts == manifest["rows"] and first.rows == counts
    assert 0.75 < counts["train"] / len(a) < 0.85 and counts["test"] > 0 and counts["validation"] > 0
    assert [f["name"] for f in manifest["schema"]["fields"]] == [
        "customer_id", "tenure_months", "monthly_charges", "charges_per_month", "support_calls", "churned"]  # fmt: skip
    again = build_features(spark, raw, Dataset.at(lake, "churn", "features_a", conn_id="aws_default"), build)
    assert again.reused and again.manifest_uri == first.manifest_uri


def test_sql_with_parameters(stack, spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    raw = Dataset.at(str(tmp_path / "lake"), "churn", "raw")
    land_batch(stack, raw, to_csv(clean_rows(500)))
    sql = tmp_path / "features.sql"
    sql.write_text("SELECT customer_id, monthly_charges * 12 AS yearly FROM raw WHERE support_calls <= :max_calls")
    out = build_features(spark, raw, Dataset.at(str(tmp_path / "lake"), "churn", "features"),
                         FeatureBuild("customer_id", sql=str(sql), params={"max_calls": 3}))  # fmt: skip
    expected = sum(1 for r in clean_rows(500) if r["support_calls"] <= 3)
    assert sum(out.rows.values()) == expected


def test_failing_transform_publishes_nothing(stack, spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    raw = Dataset.at(str(tmp_path / "lake"), "churn", "raw")
    land_batch(stack, raw, to_csv(clean_rows(200)))
    features = Dataset.at(str(tmp_path / "lake"), "churn", "features")
    with pytest.raises(RuntimeError, match="feature code bug"):
        build_features(
            spark,
            raw,
            features,
            FeatureBuild("customer_id", transform=f"{__name__.rsplit('.', 1)[0]}.feature_transforms:broken"),
        )
    assert not features.root.exists() or not any(features.root.rglob("*.parquet"))
    assert features.read_json("_state", "features.json") is None


def test_empty_input_and_empty_output_are_reported(stack, spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lake = str(tmp_path / "lake")
    with pytest.raises(EmptyInputError, match="no admitted rows"):
        build_features(spark, Dataset.at(lake, "churn", "raw"), Dataset.at(lake, "churn", "features"),
                       FeatureBuild("customer_id", transform=TRANSFORM))  # fmt: skip
    raw = Dataset.at(lake, "churn", "raw")
    land_batch(stack, raw, to_csv(clean_rows(50)))
    with pytest.raises(EmptyInputError, match="no rows"):
        build_features(spark, raw, Dataset.at(lake, "churn", "features"),
                       FeatureBuild("customer_id", transform=EMPTY))  # fmt: skip


def test_missing_key_column_names_the_columns(stack, spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    raw = Dataset.at(str(tmp_path / "lake"), "churn", "raw")
    land_batch(stack, raw, to_csv(clean_rows(20)))
    with pytest.raises(ValueError, match=r"key_column 'account' is not a column .*customer_id"):
        build_features(spark, raw, Dataset.at(str(tmp_path / "lake"), "churn", "features"),
                       FeatureBuild("account", transform=TRANSFORM))  # fmt: skip


EMPTY_DAG = """
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from mlops_ops.operators.spark import SparkPreprocessOperator

with DAG("empty_preprocess", schedule=None, start_date=datetime(2026, 1, 1)):
    SparkPreprocessOperator(task_id="preprocess", pipeline="churn", lake={lake!r}, key_column="customer_id",
                            transform="tests.integration.feature_transforms:churn_features") >> EmptyOperator(
        task_id="train")
"""


def test_operator_skips_itself_and_downstream_on_empty_input(stack, tmp_path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    import airflow.settings
    from airflow.dag_processing.dagbag import DagBag

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "empty_preprocess.py").write_text(EMPTY_DAG.format(lake=str(tmp_path / "lake")))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(dags))
    caplog.set_level(logging.INFO)
    run = DagBag(dag_folder=str(dags)).dags["empty_preprocess"].test()
    assert {t.task_id: t.state for t in run.get_task_instances()} == {"preprocess": "skipped", "train": "skipped"}
    assert "skipping preprocessing and everything downstream: no admitted rows" in caplog.text
