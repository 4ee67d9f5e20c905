"""What the library's operators tell Airflow's OpenLineage provider (``get_openlineage_facets_on_complete``).

Each operator returns a small result; the provider asks for lineage once the task succeeded, and this module turns
that result (read back from the task's XCom) into the provider's ``OperatorLineage`` with the datasets built by
:mod:`mlops_ops.lineage.openlineage`. The namespaces come from the task's connections: the Iceberg catalog's name,
the first Kafka bootstrap server, the MLflow tracking URI. Nothing here runs unless the provider is configured
(``[openlineage] transport``); a failure to build lineage is logged by the provider and never fails the task.
"""

from __future__ import annotations

from typing import Any


def task_result(task_instance: Any) -> dict[str, Any]:
    value = task_instance.xcom_pull(task_ids=task_instance.task_id)
    return dict(value) if isinstance(value, dict) else {}


def catalog(iceberg_conn_id: str) -> str:
    from mlops_ops.hooks.iceberg import IcebergCatalogHook

    return IcebergCatalogHook(iceberg_conn_id).catalog_name()


def tracking_uri(mlflow_conn_id: str) -> str:
    from mlops_ops.hooks.mlflow import MlflowHook

    return MlflowHook(mlflow_conn_id).tracking_uri()


def bootstrap(kafka_config_id: str) -> str:
    """The first bootstrap server of the Kafka connection (OpenLineage names a Kafka topic by it)."""
    from airflow.sdk import BaseHook

    extra = BaseHook.get_connection(kafka_config_id).extra_dejson
    return str(extra.get("bootstrap.servers", "")).split(",")[0].strip() or "unknown"


def as_operator_lineage(lineage: Any) -> Any:
    """The provider's ``OperatorLineage`` (``None`` lets the provider fall back to its defaults)."""
    if lineage is None:
        return None
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=list(lineage.inputs), outputs=list(lineage.outputs),
                           run_facets=dict(lineage.run_facets))  # fmt: skip
