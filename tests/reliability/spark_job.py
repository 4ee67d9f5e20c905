"""Build a feature table in its own process (so its Spark JVM, the process itself or the Spark Connect server it
uses can be killed without harming the test session).

usage: python -m tests.reliability.spark_job PIPELINE TRANSFORM
Prints SPARK_READY once the session is up, then ``rows=N`` when the table is committed. With ``slow_features``, the
UDF creates the file named by ``$MLOPS_TEST_UDF_MARKER`` when it first runs (the stage is then under way).
"""

from __future__ import annotations

import sys

from mlops_ops.hooks.spark import SparkHook
from mlops_ops.lake.features import FeatureBuild, build_features
from mlops_ops.lake.tables import PipelineTables, load_catalog


def slow_features(df, spark):  # type: ignore[no-untyped-def]
    """The test transform with a Python UDF that takes a few seconds, so the job can be killed while it runs."""
    import os
    import time
    from pathlib import Path

    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType

    from tests.integration.feature_transforms import churn_features

    marker = Path(os.environ["MLOPS_TEST_UDF_MARKER"])

    @F.udf(DoubleType())
    def slow(x):  # type: ignore[no-untyped-def]
        if not marker.exists():
            marker.touch()
        time.sleep(0.004)
        return float(x)

    return churn_features(df, spark).withColumn("monthly_charges", slow(F.col("monthly_charges")))


def main(pipeline: str, transform: str) -> None:
    spark = SparkHook(app_name="mlops-ops-fault").get_conn()
    print("SPARK_READY", flush=True)
    build = FeatureBuild("customer_id", transform=transform)
    result = build_features(spark, PipelineTables(load_catalog(None), pipeline), build)
    print(f"rows={result.rows}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
