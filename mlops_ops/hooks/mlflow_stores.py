"""MLflow stores whose credentials stay inside the client (MLflow plugin entry points ``mlflow.tracking_store`` and
``mlflow.model_registry_store``, scheme ``mlops-ops``).

MLflow's own REST stores read basic-auth credentials from ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` in the process
environment, so any client with a password puts it there for every thread and child process. A client built on
``mlops-ops://<conn id>`` (:meth:`MlflowHook.scoped_client`) asks Airflow for that connection once, when the store
is made, and hands MLflow the host and credentials directly; nothing is written to the environment. The API server
uses it (the *ML pipelines* page, testing an MLflow connection in the UI).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

SCHEME = "mlops-ops"


def store_uri(conn_id: str) -> str:
    return f"{SCHEME}://{conn_id}"


def _host_creds(uri: str) -> Any:
    from mlflow.utils.rest_utils import MlflowHostCreds

    from mlops_ops.hooks.mlflow import MlflowHook

    conn_id = urlparse(uri).netloc
    hook = MlflowHook(conn_id)
    conn = hook.get_connection(conn_id)
    creds = MlflowHostCreds(host=hook.tracking_uri(), username=conn.login or None, password=conn.password or None)
    return lambda: creds


def tracking_store(store_uri: str, artifact_uri: str | None = None, **_: Any) -> Any:
    from mlflow.store.tracking.rest_store import RestStore

    return RestStore(_host_creds(store_uri))


def registry_store(store_uri: str, tracking_uri: str | None = None, **_: Any) -> Any:
    from mlflow.store.model_registry.rest_store import RestStore

    return RestStore(_host_creds(store_uri))
