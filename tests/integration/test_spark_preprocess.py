"""Spark preprocessing ``raw`` -> ``features`` against a real local Spark session, the Iceberg catalog and S3:
deterministic splits, incremental builds, full rebuilds when needed, nothing committed on failure."""

from __future__ import annotations

import pytest

from mlops_ops.exceptions import EmptyInputError
from mlops_ops.lake import transaction
from mlops_ops.lake.features import FeatureBuild, build_features
from mlops_ops.lake.tables import PipelineTables
from tests.integration.churn_data import clean_rows, land_batch, to_csv
from tests.integration.lake_helpers import committed_rows, new_tables

TRANSFORM = "tests.integration.feature_transforms:churn_features"
EMPTY = "tests.integration.feature_transforms:nothing_left"


@pytest.fixture(scope="module")
def spark(stack):  # type: ignore[no-untyped-def]
    from mlops_ops.hooks.spark import SparkHook

    return SparkHook("spark_default", app_name="mlops-ops-tests").get_conn()


def _split_of_each_key(tables: PipelineTables) -> dict[str, str]:
    assignment: dict[str, str] = {}
    for row in committed_rows(tables, "features"):
        assert row["customer_id"] not in assignment, f"{row['customer_id']} appears twice"
        assignment[row["customer_id"]] = row["_split"]
    return assignment


def test_transform_builds_deterministic_splits(stack, spark) -> None:  # type: ignore[no-untyped-def]
    rows = clean_rows(3000)
    first_tables, second_tables = new_tables("f"), new_tables("f")
    build = FeatureBuild("customer_id", transform=TRANSFORM, params={"min_tenure": 1})
    for tables in (first_tables, second_tables):
        land_batch(stack, tables, to_csv(rows))
    first = build_features(spark, first_tables, build)
    build_features(spark, second_tables, build)
    a, b = _split_of_each_key(first_tables), _split_of_each_key(second_tables)
    expected = {r["customer_id"] for r in rows if r["tenure_months"] >= 1}
    assert set(a) == expected
    assert a == b, "the same input must give the same split for every key"
    counts = {s: sum(1 for v in a.values() if v == s) for s in ("train", "validation", "test")}
    assert (
        first.rows == counts
        and first.mode == "full"
        and first.ref == f"{first_tables.pipeline}.features@{first.snapshot_id}"
    )
    assert 0.75 < counts["train"] / len(a) < 0.85 and counts["test"] > 0 and counts["validation"] > 0
    columns = [f.name for f in first_tables.load("features").schema().fields]
    assert columns == ["customer_id", "tenure_months", "monthly_charges", "charges_per_month", "support_calls",
                       "churned", "_split"]  # fmt: skip
    again = build_features(spark, first_tables, build)  # nothing new in raw: the same snapshot
    assert again.reused and again.ref == first.ref


def test_builds_are_incremental_and_rebuild_fully_when_they_must(stack, spark) -> None:  # type: ignore[no-untyped-def]
    tables = new_tables("f")
    build = FeatureBuild("customer_id", transform=TRANSFORM)
    land_batch(stack, tables, to_csv(clean_rows(500)))
    first = build_features(spark, tables, build)
    land_batch(stack, tables, to_csv(clean_rows(200, start=1_000, seed=2)))
    second = build_features(spark, tables, build)
    assert second.mode == "incremental" and second.rows_in == 200 and sum(second.rows.values()) == 700
    assert len(_split_of_each_key(tables)) == 700
    summary = transaction.summary_of(tables.load("features").snapshot_by_id(second.snapshot_id))
    assert summary["mlops.raw-from"] == str(first.raw_snapshot) and summary["mlops.raw-snapshot"] == str(
        second.raw_snapshot
    )
    # the pinned snapshot of the first build still reads what it read (time travel)
    from mlops_ops.training.data import open_features, read_split

    old = open_features(first.ref, tables.catalog)
    assert sum(len(read_split(old, s)) for s in ("train", "validation", "test")) == 500
    # another transform (here: other params) changes every row: a full rebuild
    changed = FeatureBuild("customer_id", transform=TRANSFORM, params={"min_tenure": 10})
    third = build_features(spark, tables, changed)
    assert third.mode == "full" and third.rows_in == 700
    # a transform over all history says so: every build reads everything
    full = FeatureBuild("customer_id", transform=TRANSFORM, params={"min_tenure": 10}, full_rebuild=True)
    land_batch(stack, tables, to_csv(clean_rows(10, start=5_000, seed=3)))
    assert build_features(spark, tables, full).mode == "full"


def test_a_reingested_object_rebuilds_features_without_its_old_rows(stack, spark) -> None:  # type: ignore[no-untyped-def]
    from mlops_ops.lake import batches
    from mlops_ops.lake.s3_ingest import S3BatchIngest, S3BatchSettings
    from mlops_ops.stack.services import s3_client
    from tests.integration.churn_data import SCHEMA

    tables = new_tables("f")
    client = s3_client(stack.settings)
    bucket = f"re-{tables.pipeline}".replace("_", "-")
    client.create_bucket(Bucket=bucket)
    settings = S3BatchSettings(bucket=bucket, prefix="in/", format="csv", schema=SCHEMA)
    build = FeatureBuild("customer_id", transform=TRANSFORM)
    for rows in (clean_rows(300), clean_rows(120, start=9_000, seed=5)):  # the same key, a new version
        client.put_object(Bucket=bucket, Key="in/export.csv", Body=to_csv(rows))
        staged = S3BatchIngest(client, tables, settings).run().staged
        assert staged is not None
        batches.publish(tables, tables.load("raw"), staged)
        built = build_features(spark, tables, build)
    latest = sorted(r["customer_id"] for r in clean_rows(120, start=9_000, seed=5) if r["tenure_months"] >= 0)
    assert built.mode == "full" and sorted(_split_of_each_key(tables)) == latest


def test_sql_with_parameters(stack, spark, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tables = new_tables("f")
    land_batch(stack, tables, to_csv(clean_rows(500)))
    sql = tmp_path / "features.sql"
    sql.write_text("SELECT customer_id, monthly_charges * 12 AS yearly FROM raw WHERE support_calls <= :max_calls")
    out = build_features(spark, tables, FeatureBuild("customer_id", sql=str(sql), params={"max_calls": 3}))
    expected = sum(1 for r in clean_rows(500) if r["support_calls"] <= 3)
    assert sum(out.rows.values()) == expected


def test_failing_transform_commits_nothing(stack, spark) -> None:  # type: ignore[no-untyped-def]
    tables = new_tables("f")
    land_batch(stack, tables, to_csv(clean_rows(200)))
    with pytest.raises(RuntimeError, match="feature code bug"):
        broken = f"{__name__.rsplit('.', 1)[0]}.feature_transforms:broken"
        build_features(spark, tables, FeatureBuild("customer_id", transform=broken))
    assert committed_rows(tables, "features") == []


def test_empty_input_and_empty_output_are_reported(stack, spark) -> None:  # type: ignore[no-untyped-def]
    tables = new_tables("f")
    with pytest.raises(EmptyInputError, match="does not exist yet"):
        build_features(spark, tables, FeatureBuild("customer_id", transform=TRANSFORM))
    land_batch(stack, tables, to_csv(clean_rows(50)))
    with pytest.raises(EmptyInputError, match="no rows"):
        build_features(spark, tables, FeatureBuild("customer_id", transform=EMPTY))


def test_missing_key_column_names_the_columns(stack, spark) -> None:  # type: ignore[no-untyped-def]
    tables = new_tables("f")
    land_batch(stack, tables, to_csv(clean_rows(20)))
    with pytest.raises(ValueError, match=r"key_column 'account' is not a column .*customer_id"):
        build_features(spark, tables, FeatureBuild("account", transform=TRANSFORM))


EMPTY_DAG = """
from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from mlops_ops.operators.spark import SparkPreprocessOperator

with DAG("empty_preprocess", schedule=None, start_date=datetime(2026, 1, 1)):
    SparkPreprocessOperator(task_id="preprocess", pipeline={pipeline!r}, key_column="customer_id",
                            transform="tests.integration.feature_transforms:churn_features") >> EmptyOperator(
        task_id="train")
"""


def test_operator_skips_itself_and_downstream_on_empty_input(stack, tmp_path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    import airflow.settings
    from airflow.dag_processing.dagbag import DagBag

    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "empty_preprocess.py").write_text(EMPTY_DAG.format(pipeline=new_tables("e").pipeline))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(dags))
    caplog.set_level(logging.INFO)
    run = DagBag(dag_folder=str(dags)).dags["empty_preprocess"].test()
    assert {t.task_id: t.state for t in run.get_task_instances()} == {"preprocess": "skipped", "train": "skipped"}
    assert "skipping preprocessing and everything downstream" in caplog.text


def test_a_session_the_server_closed_is_replaced_as_the_current_one(stack, spark) -> None:  # type: ignore[no-untyped-def]
    """The Connect server restarted (``stack.up`` with a cluster and back, a crash): pyspark closes this process's
    session (``INVALID_HANDLE.SESSION_CHANGED`` sets the client's ``_closed``) but keeps it current, so the hook's
    next session must become current itself: Great Expectations' Spark engine and pyspark's functions ask
    pyspark for the session, not the hook."""
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    from mlops_ops.hooks.spark import SparkHook

    spark.client._closed = True  # what pyspark does when the server answers for another session
    assert spark.is_stopped and ConnectSession.getActiveSession() is None
    fresh = SparkHook("spark_default", app_name="mlops-ops-tests").get_conn()
    assert fresh is not spark
    found = ConnectSession.builder.getOrCreate()  # exactly what Great Expectations' Spark engine calls
    assert found is fresh and ConnectSession.getActiveSession() is fresh
    assert found.range(3).count() == 3
