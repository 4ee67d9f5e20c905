"""The embedded stack: Kafka (Tansu), S3 (SeaweedFS), MLflow and an Airflow home, all on 127.0.0.1."""

from __future__ import annotations

from mlops_ops.stack.stack import EmbeddedStack, ServiceStatus

__all__ = ["EmbeddedStack", "ServiceStatus"]
