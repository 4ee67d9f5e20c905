from __future__ import annotations

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


def test_plugin_mounts_the_app() -> None:
    from mlops_ops.plugin import MlopsOpsPlugin

    (mounted,) = MlopsOpsPlugin.fastapi_apps
    assert mounted["url_prefix"] == "/mlops-ops" and mounted["app"] is data_docs.app
