"""Spark transforms of the gallery's pipelines: ``(df, spark, **params) -> DataFrame``, one row per key."""

from __future__ import annotations

from typing import Any


def latest(df: Any, key: str, order: str) -> Any:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    window = Window.partitionBy(key).orderBy(F.col(order).desc_nulls_last())
    return df.withColumn("_rank", F.row_number().over(window)).where("_rank = 1").drop("_rank")


def ticket_features(df: Any, spark: Any) -> Any:
    """One row per ticket; text length on a log scale; strings, booleans and the timestamp stay as they are (the
    model encodes them)."""
    from pyspark.sql import functions as F

    return latest(df, "ticket_id", "opened_at").select(
        "ticket_id", "channel", "plan", F.log1p("words").alias("log_words"), "has_attachment", "mentions_invoice",
        "mentions_password", "error_codes", "account_age_days", "opened_at", "queue",
    )  # fmt: skip


def loan_features(df: Any, spark: Any, *, min_income: float = 1_000.0) -> Any:
    """One row per application, with the loan-to-income ratio."""
    from pyspark.sql import functions as F

    return (
        latest(df, "application_id", "_row")
        .where(F.col("income") >= min_income)
        .select("application_id", "income", "amount", (F.col("amount") / F.col("income")).alias("loan_to_income"),
                "credit_score", "late_payments", "purpose", "employed", "outcome")
    )
