"""The Data Docs route inside Airflow's real API app, reading a page from a lake on the embedded S3."""

from __future__ import annotations

import uuid

import pytest


def test_api_server_serves_data_docs_from_an_s3_lake(stack, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    from mlops_ops.lake.store import lake_path
    from mlops_ops.ui import data_docs

    lake = f"s3://mlops-lake/ui-{uuid.uuid4().hex[:8]}"
    page = lake_path(lake, "aws_default") / "churn" / "_data_docs" / "validations" / "r1.html"
    page.write_bytes(b"<html>gate result</html>")
    monkeypatch.setenv("AIRFLOW_VAR_MLOPS_OPS_LAKE", lake)
    client = TestClient(create_app())
    assert client.get("/mlops-ops/data-docs/churn/validations/r1.html").status_code == 401  # Airflow's login

    async def signed_in(request: object, pipeline: str) -> None:
        return None

    monkeypatch.setattr(data_docs, "_check_access", signed_in)
    reply = client.get("/mlops-ops/data-docs/churn/validations/r1.html")
    assert reply.status_code == 200 and reply.content == b"<html>gate result</html>"
    assert client.get("/mlops-ops/data-docs/churn/validations/missing.html").status_code == 404
