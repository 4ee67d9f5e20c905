"""Build ``<pipeline>.features`` from ``<pipeline>.raw`` with Spark: user transform, deterministic splits,
incrementally.

A build pins ``raw``'s current snapshot R and:

1. reads only the files that snapshots after the last build's raw snapshot added (their range goes in the
   summary), unless a full rebuild is needed: first build, the transform or its parameters changed, the
   spec says ``full_rebuild`` (aggregations over all history), or raw replaced rows in that range (a
   re-ingested object); then every live file of R is read and the table is replaced;
2. applies the transform (``module:function`` called as ``fn(df, spark, **params)``) or SQL (the input is
   the view ``raw``; ``:name`` markers bind ``params``);
3. assigns each row to train/validation/test by ``xxhash64`` of the key column, so the same key lands in the
   same split on every run, whatever the input order;
4. writes Parquet and commits it to ``features`` in one commit, conditional on ``features`` still being at
   the snapshot the build started from. A transform that raises commits nothing.

Nothing new in raw since the last build (same transform) reuses the current features snapshot.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_ops.exceptions import EmptyInputError
from mlops_ops.lake import transaction
from mlops_ops.lake.reading import added_since, live_files
from mlops_ops.lake.spark_io import spark_readable, spark_uri, upload
from mlops_ops.lake.tables import FEATURES, RAW, SPLIT_COLUMN, PipelineTables, data_folder, snapshot_ref

SPLITS = ("train", "validation", "test")
HASH_BUCKETS = 10_000
RAW_SNAPSHOT_KEY = "mlops.raw-snapshot"
BUILD_KEY = "mlops.build"
SPLIT_ROWS_KEY = "mlops.split-rows"
KEY_COLUMN_KEY = "mlops.key-column"


@dataclass(frozen=True)
class FeatureBuild:
    key_column: str
    transform: str | None = None
    sql: str | None = None
    params: Mapping[str, Any] | None = None
    splits: Mapping[str, float] | None = None
    full_rebuild: bool = False

    def fractions(self) -> dict[str, float]:
        given = dict(self.splits or {"train": 0.8, "validation": 0.1, "test": 0.1})
        return {name: float(given.get(name, 0.0)) for name in SPLITS}

    def identity(self) -> dict[str, Any]:
        return {
            "key_column": self.key_column,
            "transform": self.transform,
            "sql": _sql_text(self.sql),
            "params": dict(self.params or {}),
            "splits": self.fractions(),
            "full_rebuild": self.full_rebuild,
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True, default=str).encode()).hexdigest()[:20]


@dataclass
class FeatureResult:
    ref: str
    """``<pipeline>.features@<snapshot id>``: what training, evaluation and drift read."""
    snapshot_id: int
    raw_snapshot: int
    rows: dict[str, int]
    reused: bool
    mode: str  # full | incremental | reused
    rows_in: int = 0


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
    from mlops_ops.callables import load_callable

    return load_callable(dotted, field="preprocess transform")


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


def _plan_inputs(raw: Any, raw_head: int, features: Any, build: FeatureBuild) -> tuple[str, list[tuple[str, int]], Any]:
    """``(mode, input files, previous features snapshot)`` for a build against raw snapshot ``raw_head``."""
    previous = transaction.head(features) if features is not None else None
    summary = transaction.summary_of(previous)
    built_from = summary.get(RAW_SNAPSHOT_KEY)
    same_build = summary.get(BUILD_KEY) == build.fingerprint()
    if built_from is not None and same_build and int(built_from) == raw_head:
        return "reused", [], previous
    if built_from is not None and same_build and not build.full_rebuild:
        added, append_only = added_since(raw, int(built_from), raw_head)
        if append_only:
            return "incremental", added, previous
    return "full", live_files(raw, raw_head), previous


def build_features(
    spark: Any, tables: PipelineTables, build: FeatureBuild, *, local_session: bool = True
) -> FeatureResult:
    raw = tables.load(RAW)
    raw_head_snap = transaction.head(raw) if raw is not None else None
    if raw_head_snap is None:
        raise EmptyInputError(f"{tables.ident(RAW)} does not exist yet: nothing to preprocess")
    raw_head = int(raw_head_snap.snapshot_id)
    features = tables.load(FEATURES)
    mode, files, previous = _plan_inputs(raw, raw_head, features, build)
    rows_in = sum(rows for _, rows in files)
    prev_rows = json.loads(transaction.summary_of(previous).get(SPLIT_ROWS_KEY, "{}"))
    if mode == "reused" or (mode == "incremental" and rows_in == 0):
        # (an incremental range without rows: raw moved by a quarantined batch or a position record only)
        return FeatureResult(
            snapshot_ref(tables.ident(FEATURES), previous.snapshot_id),
            int(previous.snapshot_id),
            int(transaction.summary_of(previous)[RAW_SNAPSHOT_KEY]),
            prev_rows,
            True,
            "reused",
        )
    if rows_in == 0:
        raise EmptyInputError(f"{tables.ident(RAW)} has no rows: nothing to preprocess")

    from pyspark.sql import functions as F

    build_id = f"f-{build.fingerprint()}-{raw_head}"
    scratch = Path(tempfile.mkdtemp(prefix="mlops-ops-features-"))
    try:
        with spark_readable([p for p, _ in files], local_session=local_session, io=raw.io) as paths:
            df = spark.read.option("mergeSchema", "true").parquet(*paths)
            out = _apply(spark, df, build, _sql_text(build.sql))
            if build.key_column not in out.columns:
                raise ValueError(
                    f"key_column '{build.key_column}' is not a column of the transformed data "
                    f"(columns: {', '.join(out.columns)})"
                )
            if SPLIT_COLUMN in out.columns:
                raise ValueError(f"the transform's output has a column '{SPLIT_COLUMN}': that name is the split's")
            out = out.withColumn(SPLIT_COLUMN, split_expression(F, build.key_column, build.fractions()))
            features = _ensure_features(tables, features, out, rebuild=mode == "full")
            target = data_folder(features, build_id)
            written_to = spark_uri(target) if not local_session else str(scratch / "out")
            out.write.mode("overwrite").parquet(written_to)
            counts = {r[SPLIT_COLUMN]: int(r["count"]) for r in out.groupBy(SPLIT_COLUMN).count().collect()}
        paths_out = _collect_output(features, scratch / "out", target, local_session, spark)
        if not paths_out or sum(counts.values()) == 0:
            raise EmptyInputError("the transform returned no rows: nothing to publish")
        total = dict(counts) if mode == "full" else {s: int(prev_rows.get(s, 0)) + counts.get(s, 0) for s in SPLITS}
        props = {
            RAW_SNAPSHOT_KEY: str(raw_head),
            "mlops.raw-from": transaction.summary_of(previous).get(RAW_SNAPSHOT_KEY, "")
            if mode == "incremental"
            else "",
            BUILD_KEY: build.fingerprint(),
            "mlops.mode": mode,
            "mlops.rows-in": str(rows_in),
            SPLIT_ROWS_KEY: transaction.json_value(total),
            KEY_COLUMN_KEY: build.key_column,
            "mlops.build-identity": transaction.json_value(build.identity())[:8000],
        }
        expected = _expected_head(features, previous)
        sid = transaction.commit_files(
            features, build_id, paths_out, props, expected_head=expected, replace=mode == "full"
        )
        return FeatureResult(
            snapshot_ref(tables.ident(FEATURES), sid),
            sid,
            raw_head,
            {s: int(total.get(s, 0)) for s in SPLITS},
            False,
            mode,
            rows_in,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _expected_head(features: Any, previous: Any) -> int | None:
    """The head a build's commit must still find: the one it planned from, or the new table's empty first one."""
    if previous is not None:
        return int(previous.snapshot_id)
    head = transaction.head(features.refresh())
    if head is not None and RAW_SNAPSHOT_KEY in transaction.summary_of(head):
        from mlops_ops.exceptions import LakeConflictError

        raise LakeConflictError("another build created and filled the features table meanwhile; a retry starts again")
    return int(head.snapshot_id) if head is not None else None


def _ensure_features(tables: PipelineTables, features: Any, out: Any, *, rebuild: bool) -> Any:
    """The features table, created from (or evolved to) the transform's output schema; a full rebuild makes its
    columns exactly the output's (columns the transform no longer produces would be all-null features)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    from mlops_ops.lake.tables import ensure_table, reshape

    arrow = to_arrow_schema(out.schema, timezone="UTC")
    schema = pa.schema([f.with_type(pa.timestamp("us", tz="UTC")) if pa.types.is_timestamp(f.type) else f
                        for f in arrow.remove_metadata()])  # fmt: skip
    if rebuild and features is not None:
        return reshape(features, schema)
    return ensure_table(tables.catalog, tables.ident(FEATURES), schema)


def _collect_output(features: Any, local_out: Path, target: str, local_session: bool, spark: Any) -> list[str]:
    """Paths of the non-empty Parquet files Spark wrote, now in the features table's data folder."""
    import pyarrow.parquet as pq

    if local_session:
        out = []
        for part in sorted(local_out.glob("part-*.parquet")):
            if pq.ParquetFile(part).metadata.num_rows == 0:
                continue
            dest = f"{target}/{part.name}"
            upload(features.io, part, dest)
            out.append(dest)
        return out
    # a cluster wrote straight into the table's folder: Spark lists what it wrote (DataFrame.inputFiles works in
    # classic and Spark Connect sessions alike; the names come back as Spark's s3a:// URIs)
    out = []
    for written in sorted(spark.read.parquet(spark_uri(target)).inputFiles()):
        name = written.rsplit("/", 1)[-1]
        if not name.startswith("part-"):
            continue
        uri = f"{target}/{name}"
        with features.io.new_input(uri).open() as fh:
            if pq.ParquetFile(fh).metadata.num_rows:
                out.append(uri)
    return out


def transform_frame(
    spark: Any,
    io: Any,
    paths: list[str],
    build: FeatureBuild,
    *,
    local_session: bool = True,
    max_rows: int | None = None,
) -> Any:
    """The transform applied to some raw files, as a pandas DataFrame (no splits, nothing written).

    Drift monitoring featurizes new data with exactly the code that built the champion's features.
    """
    with spark_readable(paths, local_session=local_session, io=io) as local:
        out = _apply(spark, spark.read.option("mergeSchema", "true").parquet(*local), build, _sql_text(build.sql))
        if max_rows is not None:
            out = out.limit(max_rows)
        return out.toPandas()


def _apply(spark: Any, df: Any, build: FeatureBuild, sql: str | None) -> Any:
    """``sql`` is the query text the build fingerprint was computed from (the file is read once per build)."""
    params = dict(build.params or {})
    if build.transform:
        out = load_transform(build.transform)(df, spark, **params)
        if not hasattr(out, "columns") or not hasattr(out, "write"):
            raise TypeError(f"preprocess transform '{build.transform}' returned {type(out).__name__}, not a DataFrame")
        return out
    df.createOrReplaceTempView("raw")
    return spark.sql(sql, args=params or None)
