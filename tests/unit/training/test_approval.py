from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mlops_ops.training.approval import (
    APPROVAL_TAG,
    NotApprovedError,
    decision,
    decision_tags,
    evidence_markdown,
    require_approved,
)

REPORT = {
    "model_name": "churn",
    "task": "binary",
    "split": "test",
    "rows": 600,
    "metrics": ["roc_auc", "accuracy"],
    "challenger": {"version": "7", "metrics": {"roc_auc": 0.8123, "accuracy": 0.75}},
    "champion": {"version": "5", "metrics": {"roc_auc": 0.8001, "accuracy": 0.76}},
    "baseline": {"metrics": {"roc_auc": 0.5, "accuracy": 0.6}},
    "thresholds": {"roc_auc": {"min": 0.7, "max": None}},
    "max_regression": {"accuracy": 0.02},
    "verdict": {"blessed": True, "reasons": []},
    "slice_column": "contract",
    "slices": {"one|year<script>": {"rows": 10, "roc_auc": 0.9, "accuracy": 0.8}},
}


def test_evidence_has_metrics_deltas_thresholds_slices_gate_and_drift() -> None:
    gate = [{"batch_id": "kafka-abc", "suite": "churn_raw", "passed": True, "rows": 3000, "evaluated": 9,
             "failed": 0, "warnings": 1, "docs_path": "validations/x.html"}]  # fmt: skip
    drift = {"drift_share": 0.5, "drifted_columns": {"tenure": 0.01}, "champion_version": "5",
             "report_url": "/mlops-ops/drift-reports/p/20261202/drift.html"}  # fmt: skip
    links = {"Evaluation report": "http://mlflow/#/runs/abc", "bad": "javascript:alert(1)"}
    text = evidence_markdown(REPORT, gate=gate, docs_url="/mlops-ops/data-docs/p", drift=drift, run_type="asset",
                             links=links)  # fmt: skip
    assert "churn v7: blessed" in text and "Champion: v5." in text
    assert "| roc_auc | 0.8123 | 0.8001 | +0.0122 | 0.5000 | ≥ 0.7 | - |" in text
    assert "| accuracy | 0.7500 | 0.7600 | -0.0100 | 0.6000 | - | 0.0200 |" in text
    assert "all checks passed" in text
    # a slice value from the data cannot break the table or inject HTML
    assert "| one\\|year&lt;script&gt; | 10 | 0.9000 | 0.8000 |" in text and "<script>" not in text
    assert "[Data Docs](/mlops-ops/data-docs/p/validations/x.html)" in text and "| passed | 3000 | 9 | 0 | 1 |" in text
    assert "share 0.5000" in text and "tenure" in text and "[drift report](/mlops-ops/drift-reports/p/" in text
    # only http(s) and same-origin links become links
    assert "[Evaluation report](http://mlflow/#/runs/abc)" in text and "javascript:" not in text


def test_evidence_without_champion_gate_or_drift() -> None:
    report = {**REPORT, "champion": None, "slices": {}, "verdict": {"blessed": False, "reasons": ["roc_auc low"]}}
    text = evidence_markdown(report, run_type="manual")
    assert "There is no champion yet." in text and "| roc_auc | 0.8123 | - | - |" in text
    assert "NOT blessed" in text and "roc_auc low" in text
    assert "No gated batch is recorded" in text and "Not a drift signal (run type: manual)" in text


def test_decision_and_tags() -> None:
    assert decision(["Approve"], approve_option="Approve", timed_out=False) == "approved"
    assert decision(["Reject"], approve_option="Approve", timed_out=False) == "rejected"
    assert decision(["Reject"], approve_option="Approve", timed_out=True) == "timed_out"
    at = datetime(2026, 12, 2, tzinfo=UTC)
    tags = decision_tags("timed_out", by=None, at=at, comment=None, where="d/r", against="2")
    assert tags == {APPROVAL_TAG: "timed_out", "mlops_ops.approval_by": "nobody (timed out)",
                    "mlops_ops.approval_at": "2026-12-02T00:00:00+00:00", "mlops_ops.approval_comment": "",
                    "mlops_ops.approval_run": "d/r", "mlops_ops.approval_against": "2"}  # fmt: skip
    long = decision_tags("approved", by="a", at=at, comment="x" * 5000, where="", against=None)
    assert long["mlops_ops.approval_against"] == "none"
    assert len(long["mlops_ops.approval_comment"]) == 1000


def test_promotion_needs_an_approved_tag() -> None:
    require_approved("m", "3", {APPROVAL_TAG: "approved", "mlops_ops.approval_against": "2"}, "2")
    require_approved("m", "1", {APPROVAL_TAG: "approved", "mlops_ops.approval_against": "none"}, None)
    for tags in ({}, {APPROVAL_TAG: "pending"}, {APPROVAL_TAG: "rejected"}, {APPROVAL_TAG: "timed_out"}):
        with pytest.raises(NotApprovedError, match="does not approve"):
            require_approved("m", "3", tags, "2")


def test_an_approval_holds_only_for_the_comparison_it_won() -> None:
    """N7: v3 approved against v2, promoted, rolled back to v2, v4 promoted: v3's old approval no longer applies."""
    tags = {APPROVAL_TAG: "approved", "mlops_ops.approval_against": "2"}
    with pytest.raises(NotApprovedError, match="approved against champion 2, but the champion is 4"):
        require_approved("m", "3", tags, "4")
    with pytest.raises(NotApprovedError, match="against champion unknown"):  # an approval from before the binding
        require_approved("m", "3", {APPROVAL_TAG: "approved"}, "2")
