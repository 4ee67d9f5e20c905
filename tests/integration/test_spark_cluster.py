"""Preprocessing on a Spark standalone cluster (a master and two workers on loopback, started by the stack from
pyspark's own jars) gives the same features and split membership as local mode (the stack's Spark Connect server runs
local[*]), row for row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.integration.churn_data import clean_rows, land_batch, to_csv
from tests.integration.lake_helpers import new_tables


@pytest.fixture(scope="module")
def cluster(stack) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    statuses = stack.up(spark_cluster=True, airflow_db=False)
    assert {s.name for s in statuses if s.healthy} >= {"spark-master", "spark-worker1", "spark-worker2"}, statuses
    yield stack
    stack.up(spark_cluster=False, airflow_db=False)  # stops the master and workers; later tests use Spark Connect
    assert not {s.name for s in stack.status()} & {"spark-master", "spark-worker1", "spark-worker2"}


def _rows(ref: str) -> list[dict[str, Any]]:
    from mlops_ops.lake.tables import load_catalog, parse_snapshot_ref

    ident, snapshot_id = parse_snapshot_ref(ref)
    rows = load_catalog(None).load_table(ident).scan(snapshot_id=snapshot_id).to_arrow().to_pylist()
    return sorted(rows, key=lambda r: r["customer_id"])


def test_the_cluster_builds_the_same_features_and_splits_as_local_mode(cluster) -> None:  # type: ignore[no-untyped-def]
    from mlops_ops.hooks.spark import SparkHook
    from mlops_ops.lake.features import FeatureBuild, build_features

    body = to_csv(clean_rows(5_000, seed=21))
    local_tables, cluster_tables = new_tables("local"), new_tables("cluster")
    land_batch(cluster, local_tables, body)
    land_batch(cluster, cluster_tables, body)
    build = FeatureBuild("customer_id", transform="tests.integration.feature_transforms:churn_features")
    local = build_features(SparkHook(app_name="mlops-ops-tests").get_conn(), local_tables, build)  # Spark Connect

    env = {**os.environ, **cluster.environment()}  # spark_default now names the cluster
    assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"])["host"] == "spark://127.0.0.1"
    done = subprocess.run([sys.executable, "-m", "tests.integration.spark_cluster_build", cluster_tables.pipeline],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(next(line[7:] for line in done.stdout.splitlines() if line.startswith("RESULT ")))
    assert remote["master"] == f"spark://127.0.0.1:{cluster.settings.ports['spark_master']}"
    assert remote["executors"] == 2  # one on each worker

    local_rows, cluster_rows = _rows(local.ref), _rows(remote["ref"])
    assert len(local_rows) == 5_000 and cluster_rows == local_rows  # same features, same _split for every key
    assert {r["_split"] for r in cluster_rows} == {"train", "validation", "test"}
