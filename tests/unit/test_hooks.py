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


SENTINEL = "SENTINEL-mlflow-scoped-7f3a"


def test_the_scoped_client_sends_the_password_and_writes_none_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The API server's MLflow client (mlops-ops:// stores): a real MLflow client against an HTTP server that records
    what it receives; the password goes in the request's basic auth and nowhere in the process environment."""
    import base64
    import os
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, str]] = []

    class Registry(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization", "")))
            body = json.dumps({"registered_model": {"name": "churn"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    conn = {"conn_type": "mlflow", "host": "127.0.0.1", "port": server.server_address[1], "login": "reader",
            "password": SENTINEL}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_SCOPED", json.dumps(conn))
    try:
        client = MlflowHook("mlflow_scoped").scoped_client()
        assert client.get_registered_model("churn").name == "churn"
    finally:
        server.shutdown()
    (path, auth), *_ = seen
    assert path.startswith("/api/2.0/mlflow/registered-models/get")
    assert base64.b64decode(auth.removeprefix("Basic ")).decode() == f"reader:{SENTINEL}"
    leaked = [k for k, v in os.environ.items() if SENTINEL in v and k != "AIRFLOW_CONN_MLFLOW_SCOPED"]
    assert leaked == [] and "MLFLOW_TRACKING_PASSWORD" not in os.environ
