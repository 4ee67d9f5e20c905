"""Feature transform of the example churn pipeline (``preprocess.transform`` in ``dags/pipelines/churn.yaml``).

A transform is any ``module:function`` taking ``(df, spark, **params)`` and returning a
Spark DataFrame; it runs on the driver, Spark does the work, so it scales with the cluster.
"""

from __future__ import annotations

from typing import Any


def churn_features(df: Any, spark: Any, *, max_support_calls: int = 50) -> Any:
    """One row per customer (the latest event wins), with ratios a churn model can use."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    latest = Window.partitionBy("customer_id").orderBy(F.col("event_time").desc_nulls_last(), F.col("_offset").desc())
    per_customer = (
        df.where(F.col("customer_id").isNotNull() & (F.col("support_calls") <= max_support_calls))
        .withColumn("_rank", F.row_number().over(latest))
        .where("_rank = 1")
    )
    return per_customer.select(
        "customer_id",
        F.col("tenure_months").cast("double").alias("tenure_months"),
        "monthly_charges",
        "total_charges",
        (F.col("total_charges") / F.greatest(F.col("tenure_months"), F.lit(1))).alias("avg_monthly_spend"),
        F.col("support_calls").cast("double").alias("support_calls"),
        "contract",  # a string: the model one-hot encodes it itself (and so does its saved copy, when serving)
        F.col("churned").cast("int").alias("churned"),
    )
