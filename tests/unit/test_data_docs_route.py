from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mlops_ops.ui import data_docs


@pytest.fixture
def lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    page = tmp_path / "churn" / "_data_docs" / "validations" / "churn_raw" / "r1.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>churn_raw result</html>")
    (tmp_path / "churn" / "secret.json").write_text("{}")
    monkeypatch.setattr(data_docs, "lake_uri", lambda: str(tmp_path))
    return tmp_path


def test_page_is_read_from_the_lake(lake: Path) -> None:
    body, media = data_docs.read_page(str(lake), "churn", "validations/churn_raw/r1.html")
    assert body == b"<html>churn_raw result</html>" and media == "text/html"


@pytest.mark.parametrize("path", ["../secret.json", "validations/../../secret.json", "", "a/./b"])
def test_nothing_outside_the_docs_folder(lake: Path, path: str) -> None:
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as info:
        data_docs.read_page(str(lake), "churn", path)
    assert info.value.status_code == 404


def test_route_needs_a_login_then_serves(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client = TestClient(data_docs.app)
    assert client.get("/data-docs/churn/validations/churn_raw/r1.html").status_code in (401, 403)
    assert client.get("/data-docs/Bad-Name/x.html").status_code == 404  # a name no pipeline has: 404 before login

    asked: list[str] = []

    async def allow(request: object, pipeline: str) -> None:
        asked.append(pipeline)

    monkeypatch.setattr(data_docs, "_check_access", allow)
    reply = client.get("/data-docs/churn/validations/churn_raw/r1.html")
    assert reply.status_code == 200 and reply.text == "<html>churn_raw result</html>"
    assert reply.headers["content-type"].startswith("text/html")
    assert client.get("/data-docs/churn/nope.html").status_code == 404
    assert client.get("/data-docs/Bad-Name/x.html").status_code == 404
    assert asked == ["churn", "churn", "Bad-Name"]  # every request is checked against the pipeline's DAG
    assert reply.headers["content-security-policy"].startswith("sandbox;")  # no script of a lake page runs


def test_plugin_mounts_the_app() -> None:
    from mlops_ops.plugin import MlopsOpsPlugin

    (mounted,) = MlopsOpsPlugin.fastapi_apps
    assert mounted["url_prefix"] == "/mlops-ops" and mounted["app"] is data_docs.app


@pytest.mark.parametrize(
    "path",
    [
        "/data-docs/../data-docs/churn/validations/churn_raw/r1.html",
        "/data-docs/churn/validations/../validations/churn_raw/r1.html",
        "/data-docs/churn/%2e%2e/secret.json",
        "/data-docs/churn/%252e%252e/secret.json",
        "/data-docs/churn/validations%5c..%5csecret.json",
        "/drift-reports/churn/./x.html",
        "/drift-reports/%2E%2E/churn/x.html",
        "/lake/churn/../raw/1",
        "/lake/%2e%2e/raw/1",
        "/pipelines/..",
        "/api/pipelines/%2e%2e",
        "/data-docs/churn/a%00b.html",
    ],
)
def test_dot_segments_are_a_404_on_every_route(lake: Path, monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    async def allow(request: object, pipeline: str) -> None:
        return None

    monkeypatch.setattr(data_docs, "_check_access", allow)
    from mlops_ops.ui.app import app

    assert _raw_get(app, path) == 404  # as sent: HTTP clients like curl --path-as-is do not remove dot segments
    assert _raw_get(app, "/data-docs/churn/validations/churn_raw/r1.html") == 200


def _raw_get(app: object, raw_path: str) -> int:
    """The status of a GET whose path reaches the app exactly as written (httpx would normalise dot segments)."""
    import asyncio
    from urllib.parse import unquote

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": unquote(raw_path), "raw_path": raw_path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"host", b"testserver")], "server": ("testserver", 80),
             "client": ("127.0.0.1", 1)}  # fmt: skip
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[operator]
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))  # type: ignore[call-overload]


def test_served_pages_carry_a_sandbox_csp(lake: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def allow(request: object, pipeline: str) -> None:
        return None

    monkeypatch.setattr(data_docs, "_check_access", allow)
    report = lake / "churn" / "monitoring" / "reports" / "r.html"
    report.parent.mkdir(parents=True)
    report.write_text("<script>1</script>")
    client = TestClient(data_docs.app)
    docs = client.get("/data-docs/churn/validations/churn_raw/r1.html").headers
    assert docs["content-security-policy"].split("; ")[0] == "sandbox"  # no allow-scripts
    assert "default-src 'none'" in docs["content-security-policy"] and docs["x-content-type-options"] == "nosniff"
    policy = client.get("/drift-reports/churn/r.html").headers["content-security-policy"]
    assert policy.startswith("sandbox allow-scripts;") and "allow-same-origin" not in policy
    assert "connect-src 'none'" in policy and "form-action 'none'" in policy


def test_a_deployment_without_a_lake_gets_a_message_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi import HTTPException

    from mlops_ops.exceptions import LakeNotConfiguredError
    from mlops_ops.lake.store import Dataset, lake_path

    with pytest.raises(LakeNotConfiguredError, match="Variable 'mlops_ops_lake'"):
        lake_path("")
    with pytest.raises(LakeNotConfiguredError, match="AIRFLOW_VAR_MLOPS_OPS_LAKE"):
        Dataset.at("", "churn", "monitoring")
    monkeypatch.delenv("AIRFLOW_VAR_MLOPS_OPS_LAKE", raising=False)
    monkeypatch.setattr("airflow.sdk.Variable.get", lambda key, default=None: default)
    with pytest.raises(HTTPException) as info:
        data_docs.lake_uri()
    assert info.value.status_code == 503 and "mlops_ops_lake" in str(info.value.detail)


def test_lake_folder_template_has_no_default_bucket() -> None:
    from mlops_ops.operators.base import LAKE_TEMPLATE

    assert "s3://" not in LAKE_TEMPLATE and LAKE_TEMPLATE == "{{ var.value.get('mlops_ops_lake', '') }}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://mlflow.example.com/#/runs/1", "https://mlflow.example.com/#/runs/1"),
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000/"),
        ("/mlops-ops/data-docs/churn/x.html", "/mlops-ops/data-docs/churn/x.html"),
        ("javascript:alert(1)", ""),
        (" JavaScript:alert(1)", ""),
        ("data:text/html,<script>1</script>", ""),
        ("//evil.example.com/x", ""),
        ("/\\evil.example.com", ""),
        ("vbscript:x", ""),
        (None, ""),
    ],
)
def test_only_http_links_and_same_origin_paths_are_shown(url: str | None, shown: str) -> None:
    from mlops_ops.naming import safe_link
    from mlops_ops.ui.overview import PipelineRow
    from mlops_ops.ui.overview_page import render

    assert safe_link(url) == shown
    gate = {"state": "success", "batches": 1, "failed_expectations": 0, "data_docs_url": url}
    row = PipelineRow("churn", "churn_training", "churn_drift", gate=gate, drift={"drifted": False, "report_url": url})
    links = re.findall(r'href="([^"]*)"', render([row], ""))
    assert (html.escape(shown) in links) if shown else all(safe_link(html.unescape(link)) for link in links)


def test_the_pipelines_own_lake_is_found_on_its_gate_or_drift_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """A spec's ``lake:`` lives on the tasks that write there (the ingest DAG's gate, the drift DAG's check), not on
    the training DAG: the pages are read from it, not from the deployment-wide Variable."""
    from types import SimpleNamespace

    from airflow.models.serialized_dag import SerializedDagModel

    dags = {
        "churn__ingest": SimpleNamespace(tasks=[SimpleNamespace(task_id="ingest_kafka"),
                                                SimpleNamespace(task_id="quality_gate", lake="/lakes/churn")]),
        "churn__training": SimpleNamespace(tasks=[SimpleNamespace(task_id="preprocess")]),
        "other__ingest": SimpleNamespace(tasks=[SimpleNamespace(lake="{{ var.value.get('mlops_ops_lake', '') }}")]),
    }  # fmt: skip
    monkeypatch.setattr(SerializedDagModel, "get_dag", staticmethod(lambda dag_id, **_: dags.get(dag_id)))
    monkeypatch.setattr(data_docs, "lake_uri", lambda: "s3://deployment-lake/lake")
    assert data_docs.pipeline_lake("churn") == "/lakes/churn"
    assert data_docs.pipeline_lake("other") == "s3://deployment-lake/lake"  # templated: the Variable decides
