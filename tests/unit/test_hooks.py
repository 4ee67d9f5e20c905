from __future__ import annotations

import json

import pytest

from mlops_ops.hooks.mlflow import MlflowHook


@pytest.mark.parametrize(
    ("conn", "uri"),
    [
        ({"conn_type": "mlflow", "host": "127.0.0.1", "port": 5001}, "http://127.0.0.1:5001"),
        ({"conn_type": "mlflow", "host": "mlflow.internal", "schema": "https"}, "https://mlflow.internal"),
        ({"conn_type": "mlflow", "host": "http://m:80"}, "http://m:80"),
        ({"conn_type": "mlflow", "extra": {"tracking_uri": "databricks"}}, "databricks"),
    ],
)
def test_tracking_uri_from_connection(monkeypatch: pytest.MonkeyPatch, conn: dict, uri: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps(conn))
    assert MlflowHook("mlflow_test").tracking_uri() == uri


def test_test_connection_reports_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_TEST", json.dumps({"conn_type": "mlflow", "host": "127.0.0.1",
                                                               "port": 9}))  # fmt: skip
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    ok, message = MlflowHook("mlflow_test").test_connection()
    assert ok is False and message
