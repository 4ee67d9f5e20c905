"""Airflow provider metadata, found through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from mlops_ops import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "mlops-ops",
        "name": "mlops-ops",
        "description": "MLOps operators and DAG factories: Kafka/S3 ingestion into a lake, Spark features, "
        "Great Expectations gates, training on local/Docker/Kubernetes, MLflow evaluation and promotion.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "MLflow", "external-doc-url": "https://mlflow.org/", "tags": ["software"]},
            {
                "integration-name": "Apache Spark (mlops-ops)",
                "external-doc-url": "https://spark.apache.org/",
                "tags": ["software"],
            },
            {
                "integration-name": "Great Expectations",
                "external-doc-url": "https://greatexpectations.io/",
                "tags": ["software"],
            },
            {
                "integration-name": "mlops-ops lake",
                "external-doc-url": "https://airflow.apache.org/",
                "tags": ["software"],
            },
        ],
        "operators": [
            {
                "integration-name": "mlops-ops lake",
                "python-modules": ["mlops_ops.operators.kafka", "mlops_ops.operators.s3"],
            },
            {"integration-name": "Apache Spark (mlops-ops)", "python-modules": ["mlops_ops.operators.spark"]},
            {"integration-name": "Great Expectations", "python-modules": ["mlops_ops.operators.gx"]},
            {
                "integration-name": "MLflow",
                "python-modules": ["mlops_ops.operators.train", "mlops_ops.operators.evaluate"],
            },
        ],
        "extra-links": [
            "mlops_ops.operators.gx.DataDocsLink",
            "mlops_ops.operators.drift.DriftReportLink",
            "mlops_ops.ui.links.MlflowRunLink",
            "mlops_ops.ui.links.ModelVersionLink",
            "mlops_ops.ui.links.LakeSnapshotLink",
        ],
        "triggers": [
            {"integration-name": "mlops-ops lake", "python-modules": ["mlops_ops.triggers.sources"]},
            {"integration-name": "mlops-ops lake", "python-modules": ["mlops_ops.triggers.control"]},
        ],
        "hooks": [
            {"integration-name": "MLflow", "python-modules": ["mlops_ops.hooks.mlflow"]},
            {"integration-name": "Apache Spark (mlops-ops)", "python-modules": ["mlops_ops.hooks.spark"]},
            {"integration-name": "Great Expectations", "python-modules": ["mlops_ops.hooks.gx"]},
            {"integration-name": "mlops-ops lake", "python-modules": ["mlops_ops.hooks.iceberg"]},
        ],
        "connection-types": [
            {
                "hook-class-name": "mlops_ops.hooks.mlflow.MlflowHook",
                "connection-type": "mlflow",
                "hook-name": "MLflow Tracking Server",
            },
            {
                "hook-class-name": "mlops_ops.hooks.iceberg.IcebergCatalogHook",
                "connection-type": "iceberg",
                "hook-name": "Iceberg catalog (mlops-ops)",
            },
            {
                "hook-class-name": "mlops_ops.hooks.spark.SparkHook",
                "connection-type": "mlops_spark",
                "hook-name": "Spark (mlops-ops session)",
            },
        ],
    }
