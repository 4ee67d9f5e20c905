"""Extra-link URLs and the overview page's HTML, without a server (the server side is in test_event_scheduling)."""

from __future__ import annotations

import re

import pytest

from mlops_ops.naming import snapshot_route
from mlops_ops.ui.links import SNAPSHOT_PATH, model_version_url, run_url
from mlops_ops.ui.overview import PipelineRow, Point
from mlops_ops.ui.overview_page import render, sparkline


@pytest.mark.parametrize(
    ("path", "served"),
    [
        ("raw/5312", True),
        ("features/-12", True),
        ("raw/../x", False),
        ("raw/12/extra", False),
        ("Raw/1", False),
        ("raw/abc", False),
        ("raw", False),
    ],
)
def test_snapshot_routes_serve_only_table_snapshots(path: str, served: bool) -> None:
    assert bool(SNAPSHOT_PATH.match(path)) is served


def test_snapshot_link_url() -> None:
    assert snapshot_route("churn", "raw", 42) == "/mlops-ops/lake/churn/raw/42"


def test_mlflow_links() -> None:
    assert run_url("http://m:5000", "abc") == "http://m:5000/#/runs/abc"
    assert model_version_url("http://m:5000", "churn", "3") == "http://m:5000/#/models/churn/versions/3"
    assert run_url("", "abc") == model_version_url("http://m", "churn", "") == ""


def test_sparkline_draws_one_dot_per_point_scaled_into_the_box() -> None:
    svg = sparkline([Point("2026-11-01", 0.1), Point("2026-11-02", 0.9, "drift")], title="drift", colour="#f00",
                    fixed_max=1.0)  # fmt: skip
    assert svg.count("<circle") == 2
    ys = [float(y) for y in re.findall(r'cy="([\d.]+)"', svg)]
    assert ys[0] > ys[1] and all(4 <= y <= 36 for y in ys)  # higher value, higher on the chart
    assert sparkline([], title="x", colour="#000") == '<span class="none">—</span>'


def test_page_shows_each_pipeline_and_escapes_what_it_shows() -> None:
    rows = [
        PipelineRow("churn", "churn__training", "churn__drift", model_name="churn", key_metric="roc_auc",
                    champion_version="4", champion_metric=0.8712, last_run={"state": "success", "run_type": "manual"},
                    gate={"state": "failed", "batches": 2, "failed_expectations": 3, "data_docs_url": "/d"},
                    drift={"drift_share": 0.45, "drifted": True, "report_url": "/mlops-ops/drift-reports/churn/r.html"},
                    errors=["MLflow: <down>"]),
        PipelineRow("fraud", "fraud__training", "fraud__drift"),
    ]  # fmt: skip
    html = render(rows, "http://127.0.0.1:5000")
    assert html.count("<tr data-pipeline=") == 2
    assert 'href="http://127.0.0.1:5000/#/models/churn/versions/4"' in html and "roc_auc 0.8712" in html
    assert ">failed<" in html and "3 failed expectation(s)" in html and ">drift<" in html and "share 0.45" in html
    assert "MLflow: &lt;down&gt;" in html and "<down>" not in html
    assert "no champion yet" in html and "not checked" in html
    assert "<script" not in html  # self-contained: no scripts, no CDN
