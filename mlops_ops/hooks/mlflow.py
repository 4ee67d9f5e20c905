"""Hook for an MLflow tracking server and model registry (connection type ``mlflow``)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from mlops_ops._extras import require


class MlflowHook(BaseHook):
    """Builds the tracking URI from an Airflow connection.

    ``host``/``port``/``schema`` (http or https) give the server; ``login``/``password``
    enable basic auth; ``extra.tracking_uri`` overrides everything (e.g. ``databricks``); ``extra.ui_url`` is
    where browsers reach the UI when that differs (used by the operators' extra links).
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow Tracking Server"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden-fields": [],
            "relabeling": {"schema": "Scheme (http/https)"},
            "placeholders": {"host": "127.0.0.1", "port": "5000", "schema": "http", "extra": '{"tracking_uri": ""}'},
        }

    def tracking_uri(self) -> str:
        conn = self.get_connection(self.mlflow_conn_id)
        override = conn.extra_dejson.get("tracking_uri")
        if override:
            return str(override)
        host = conn.host or "127.0.0.1"
        if "://" in host:
            return host if conn.port is None else f"{host}:{conn.port}"
        scheme = conn.schema or "http"
        return f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")

    def ui_url(self) -> str:
        """Where a browser finds the MLflow UI: ``extra.ui_url``, else the tracking URI when it is http(s)."""
        conn = self.get_connection(self.mlflow_conn_id)
        url = str(conn.extra_dejson.get("ui_url") or self.tracking_uri())
        return url.rstrip("/") if url.startswith(("http://", "https://")) else ""

    def client_env(self) -> dict[str, str]:
        """Environment for an MLflow client in another process (the training subprocess or container)."""
        conn = self.get_connection(self.mlflow_conn_id)
        env = {"MLFLOW_TRACKING_URI": self.tracking_uri()}
        if conn.login:
            env.update(MLFLOW_TRACKING_USERNAME=conn.login, MLFLOW_TRACKING_PASSWORD=conn.password or "")
        return env

    def get_conn(self) -> Any:
        """An ``mlflow.MlflowClient`` bound to this connection (credentials passed via MLflow's env)."""
        require("mlflow", "mlflow")
        import os

        from mlflow import MlflowClient

        conn = self.get_connection(self.mlflow_conn_id)
        if conn.login:
            os.environ["MLFLOW_TRACKING_USERNAME"] = conn.login
            os.environ["MLFLOW_TRACKING_PASSWORD"] = conn.password or ""
        uri = self.tracking_uri()
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def scoped_client(self) -> Any:
        """An ``MlflowClient`` whose credentials live in the client only (store scheme ``mlops-ops``, see
        :mod:`mlops_ops.hooks.mlflow_stores`): for long-lived processes such as the API server. Reads and registry
        calls only: MLflow resolves proxied artifacts through the process's tracking URI."""
        require("mlflow", "mlflow")
        from mlflow import MlflowClient

        from mlops_ops.hooks.mlflow_stores import store_uri

        uri = store_uri(self.mlflow_conn_id)
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def test_connection(self) -> tuple[bool, str]:
        try:
            client = self.scoped_client()
            client.search_experiments(max_results=1)
        except Exception as err:  # noqa: BLE001 - reported to the UI, never raised
            return False, f"{type(err).__name__}: {err}"
        return True, f"MLflow at {self.tracking_uri()} answered"
