"""Airflow provider metadata, found through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from mlops_ops import __version__


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "mlops-ops",
        "name": "mlops-ops",
        "description": "MLOps operators and DAG factories: Kafka/S3 ingestion into a lake, MLflow registry.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "MLflow", "external-doc-url": "https://mlflow.org/", "tags": ["software"]},
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
        ],
        "sensors": [{"integration-name": "mlops-ops lake", "python-modules": ["mlops_ops.sensors.s3"]}],
        "triggers": [{"integration-name": "mlops-ops lake", "python-modules": ["mlops_ops.triggers.s3"]}],
        "hooks": [
            {"integration-name": "MLflow", "python-modules": ["mlops_ops.hooks.mlflow"]},
        ],
        "connection-types": [
            {
                "hook-class-name": "mlops_ops.hooks.mlflow.MlflowHook",
                "connection-type": "mlflow",
                "hook-name": "MLflow Tracking Server",
            }
        ],
    }
