"""Build a pipeline's features with the Spark session ``spark_default`` names (run in a fresh process: one JVM holds
one SparkContext, and the test process's is local). Prints the features ref, the master and the executor count."""

from __future__ import annotations

import json
import sys

from mlops_ops.hooks.spark import SparkHook
from mlops_ops.lake.features import FeatureBuild, build_features
from tests.integration.lake_helpers import pipeline_tables


def main(pipeline: str) -> None:
    hook = SparkHook(app_name="mlops-ops-cluster-test")
    spark = hook.get_conn()
    build = FeatureBuild("customer_id", transform="tests.integration.feature_transforms:churn_features")
    staged = hook.session_options().stages_locally
    result = build_features(spark, pipeline_tables(pipeline), build, local_session=staged)
    executors = int(spark.sparkContext._jsc.sc().getExecutorMemoryStatus().size()) - 1  # less the driver
    print("RESULT " + json.dumps({"ref": result.ref, "master": spark.sparkContext.master, "executors": executors}))


if __name__ == "__main__":
    main(sys.argv[1])
