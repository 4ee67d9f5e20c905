"""Build a feature table from admitted raw data with Spark: user transform, deterministic splits.

A build:

1. reads the admitted files of the raw dataset (quarantined batches left out);
2. applies the transform (``module:function`` called as ``fn(df, spark, **params)``) or
   SQL (the input is the view ``raw``; ``:name`` markers bind ``params``);
3. assigns each row to train/validation/test by ``xxhash64`` of the key column, so the
   same key lands in the same split on every run, whatever the input order;
4. writes Parquet partitioned by split to a scratch folder, then publishes the files under
   ``snapshots/run=<key>/``, writes the manifest, and replaces ``_state/features.json``
   (the commit point). A transform that raises publishes nothing.

The build key hashes the input files' checksums, the transform and its parameters, so
building twice from the same input gives the same key and the second build reuses the
first's snapshot.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_ops.exceptions import EmptyInputError
from mlops_ops.lake.catalog import committed_files
from mlops_ops.lake.spark_io import publish_parquet, spark_readable, spark_uri
from mlops_ops.lake.store import Dataset, lake_path

SPLITS = ("train", "validation", "test")
SPLIT_COLUMN = "_split"
HASH_BUCKETS = 10_000
STATE_FILE = "features.json"


@dataclass(frozen=True)
class FeatureBuild:
    key_column: str
    transform: str | None = None
    sql: str | None = None
    params: Mapping[str, Any] | None = None
    splits: Mapping[str, float] | None = None

    def fractions(self) -> dict[str, float]:
        given = dict(self.splits or {"train": 0.8, "validation": 0.1, "test": 0.1})
        return {name: float(given.get(name, 0.0)) for name in SPLITS}

    def identity(self) -> dict[str, Any]:
        return {"key_column": self.key_column, "transform": self.transform, "sql": _sql_text(self.sql),
                "params": dict(self.params or {}), "splits": self.fractions()}  # fmt: skip


@dataclass
class FeatureResult:
    manifest_uri: str
    run_key: str
    rows: dict[str, int]
    reused: bool


def split_expression(F: Any, key_column: str, fractions: Mapping[str, float]) -> Any:
    """The split of a row from a stable hash of its key (Spark's xxhash64 with a fixed seed)."""
    bucket = F.pmod(F.xxhash64(F.col(key_column).cast("string")), F.lit(HASH_BUCKETS))
    train_end = round(fractions["train"] * HASH_BUCKETS)
    validation_end = train_end + round(fractions["validation"] * HASH_BUCKETS)
    return (
        F.when(bucket < train_end, F.lit("train"))
        .when(bucket < validation_end, F.lit("validation"))
        .otherwise(F.lit("test"))
    )


def load_transform(dotted: str) -> Any:
    module_name, _, attr = dotted.partition(":")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"preprocess transform '{dotted}' cannot be imported: {err}") from err
    if not callable(fn):
        raise ValueError(f"preprocess transform '{dotted}' is not callable")
    return fn


def _sql_text(sql: str | None) -> str | None:
    if sql is None:
        return None
    if sql.strip().endswith(".sql") and "\n" not in sql.strip():
        path = Path(sql.strip())
        try:
            return path.read_text()
        except OSError as err:
            raise ValueError(f"preprocess SQL file '{path}' cannot be read: {err}") from err
    return sql


def build_features(
    spark: Any,
    raw: Dataset,
    features: Dataset,
    build: FeatureBuild,
    *,
    local_session: bool = True,
    conn_id: str | None = "aws_default",
) -> FeatureResult:
    files = committed_files(raw, conn_id, admitted_only=True)
    rows_in = sum(int(f["rows"]) for f in files)
    if rows_in == 0:
        raise EmptyInputError(f"no admitted rows in {raw.root}: nothing to preprocess")
    identity = {**build.identity(), "inputs": sorted(f["sha256"] for f in files)}
    run_key = "f-" + hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:20]
    state = features.read_json("_state", STATE_FILE)
    if state and state.get("run_key") == run_key:
        manifest = features.read_json("manifests", f"{run_key}.json")
        if manifest:
            return FeatureResult(state["manifest_uri"], run_key, manifest["rows"], reused=True)

    from pyspark.sql import functions as F

    # Spark writes to the lake's staging area when it can reach the lake (a cluster, or a local session with a
    # lake on this disk: publishing is then a rename); a local session with an S3 lake writes to a scratch folder.
    scratch = Path(tempfile.mkdtemp(prefix="mlops-ops-features-"))
    in_lake = not local_session or features.root.protocol in ("file", "local")
    staged = features.path("_staging", run_key) if in_lake else lake_path(str(scratch / "out"))
    spark_out = spark_uri(str(staged)) if in_lake else str(scratch / "out")
    try:
        with spark_readable([f["uri"] for f in files], local_session=local_session, conn_id=conn_id) as paths:
            df = spark.read.parquet(*paths)
            out = _apply(spark, df, build, identity["sql"])
            if build.key_column not in out.columns:
                raise ValueError(
                    f"key_column '{build.key_column}' is not a column of the transformed data "
                    f"(columns: {', '.join(out.columns)})"
                )
            out = out.withColumn(SPLIT_COLUMN, split_expression(F, build.key_column, build.fractions()))
            out.write.mode("overwrite").partitionBy(SPLIT_COLUMN).parquet(spark_out)
            schema = out.drop(SPLIT_COLUMN).schema.jsonValue()
        return _publish(features, staged, run_key, schema, identity, rows_in)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if in_lake:
            features.remove_tree("_staging", run_key)


def transform_frame(
    spark: Any,
    files: list[dict[str, Any]],
    build: FeatureBuild,
    *,
    local_session: bool = True,
    conn_id: str | None = "aws_default",
    max_rows: int | None = None,
) -> Any:
    """The transform applied to some raw files, as a pandas DataFrame (no splits, nothing written).

    Drift monitoring featurizes new data with exactly the code that built the champion's features.
    """
    with spark_readable([f["uri"] for f in files], local_session=local_session, conn_id=conn_id) as paths:
        out = _apply(spark, spark.read.parquet(*paths), build, _sql_text(build.sql))
        if max_rows is not None:
            out = out.limit(max_rows)
        return out.toPandas()


def _apply(spark: Any, df: Any, build: FeatureBuild, sql: str | None) -> Any:
    """``sql`` is the query text the build key was computed from (the file is read once per build)."""
    params = dict(build.params or {})
    if build.transform:
        out = load_transform(build.transform)(df, spark, **params)
        if not hasattr(out, "columns") or not hasattr(out, "write"):
            raise TypeError(f"preprocess transform '{build.transform}' returned {type(out).__name__}, not a DataFrame")
        return out
    df.createOrReplaceTempView("raw")
    return spark.sql(sql, args=params or None)


def _publish(
    features: Dataset, out: Any, run_key: str, schema: Any, identity: dict[str, Any], rows_in: int
) -> FeatureResult:
    rows: dict[str, int] = {}
    split_files: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        folder = out / f"{SPLIT_COLUMN}={split}"
        parts = (
            sorted((p for p in folder.iterdir() if p.name.endswith(".parquet")), key=lambda p: p.name)
            if folder.exists()
            else []
        )
        entries: list[dict[str, Any]] = []
        for i, part in enumerate(parts):
            target = features.path("snapshots", f"run={run_key}", f"split={split}", f"part-{i:05d}.parquet")
            n, digest = publish_parquet(part, target)
            if n == 0:
                target.unlink()
                continue
            entries.append({"uri": str(target), "rows": n, "sha256": digest})
        split_files[split] = entries
        rows[split] = sum(int(e["rows"]) for e in entries)
    if sum(rows.values()) == 0:
        raise EmptyInputError("the transform returned no rows: nothing to publish")
    manifest = {
        "kind": "features",
        "run_key": run_key,
        "created_at": datetime.now(UTC).isoformat(),
        "rows_in": rows_in,
        "rows": rows,
        "splits": split_files,
        "schema": schema,
        "build": {k: v for k, v in identity.items() if k != "inputs"},
        "inputs": identity["inputs"],
    }
    features.write_json(manifest, "manifests", f"{run_key}.json")
    manifest_uri = str(features.path("manifests", f"{run_key}.json"))
    features.write_json({"run_key": run_key, "manifest_uri": manifest_uri}, "_state", STATE_FILE)  # commit point
    return FeatureResult(manifest_uri, run_key, rows, reused=False)
