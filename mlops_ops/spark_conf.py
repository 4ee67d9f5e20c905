"""Spark settings shared by a session built in a task (:mod:`mlops_ops.hooks.spark`) and the embedded stack's Spark
Connect server (:mod:`mlops_ops.stack.services`): one place, no Airflow import."""

from __future__ import annotations

# What every session of this library runs with: UTC, Iceberg's microsecond timestamps, zstd Parquet, Arrow transfers.
COMMON_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.compression.codec": "zstd",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",  # Iceberg timestamps are microseconds
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
# A driver on this machine (a local session, or the stack's Spark Connect server): UI off, memory sized for a 24 GiB
# machine, few shuffle partitions, loopback only.
LOCAL_CONF: dict[str, str] = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.memory": "4g",
    "spark.sql.shuffle.partitions": "8",
    **COMMON_CONF,
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.driver.host": "127.0.0.1",
}
CLUSTER_CONF: dict[str, str] = dict(COMMON_CONF)
CONNECT_PORT = 15002  # Spark Connect's default port
