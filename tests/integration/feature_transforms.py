"""Transforms used by the preprocessing tests (imported by dotted path, like a user's)."""

from __future__ import annotations

from typing import Any


def churn_features(df: Any, spark: Any, *, min_tenure: int = 0) -> Any:
    from pyspark.sql import functions as F

    return (
        df.where(F.col("tenure_months") >= min_tenure)
        .withColumn("charges_per_month", F.col("total_charges") / F.greatest(F.col("tenure_months"), F.lit(1)))
        .select("customer_id", "tenure_months", "monthly_charges", "charges_per_month", "support_calls", "churned")
    )


def broken(df: Any, spark: Any) -> Any:
    raise RuntimeError("feature code bug: division by the wrong column")


def nothing_left(df: Any, spark: Any) -> Any:
    return df.where("1 = 0")


def crash_after_first_epoch(data: Any, *, params: dict, log_metric: Any) -> Any:
    """A trainer killed by the kernel mid-training (as by the OOM killer): SIGKILL, no cleanup."""
    import os
    import signal

    log_metric("train_loss", 0.7, 0)
    os.kill(os.getpid(), signal.SIGKILL)
