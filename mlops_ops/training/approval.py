"""The human approval of a blessed challenger: the evidence a person reads and the decision's tags on the version.

Pure functions (no Airflow, no MLflow calls): the approval operator gathers the inputs (the evaluation report, the
quality-gate rows of the data the challenger saw first, the drift event that started the run, links) and writes the
tags these functions return. ``mlops-ops lineage`` and the promotion read the same tags.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mlops_ops.naming import safe_link

APPROVAL_TAG = "mlops_ops.approval"  # pending | approved | rejected | timed_out
APPROVAL_BY_TAG = "mlops_ops.approval_by"
APPROVAL_AT_TAG = "mlops_ops.approval_at"
APPROVAL_COMMENT_TAG = "mlops_ops.approval_comment"
APPROVAL_RUN_TAG = "mlops_ops.approval_run"  # <dag_id>/<run_id>: where the request was answered
APPROVAL_AGAINST_TAG = "mlops_ops.approval_against"  # the champion version the approved comparison was made against
NO_CHAMPION = "none"
APPROVED, REJECTED, TIMED_OUT, PENDING = "approved", "rejected", "timed_out", "pending"
MAX_COMMENT = 1000


class NotApprovedError(Exception):
    """Promotion needs an approval the version does not carry."""


def decision(chosen: Sequence[str], *, approve_option: str, timed_out: bool) -> str:
    if timed_out:
        return TIMED_OUT
    return APPROVED if list(chosen) == [approve_option] else REJECTED


def decision_tags(outcome: str, *, by: str | None, at: datetime, comment: str | None, where: str,
                  against: str | None) -> dict[str, str]:  # fmt: skip
    """The decision's tags; ``against``: the champion the person saw the challenger compared with (None: none)."""
    return {
        APPROVAL_AGAINST_TAG: against or NO_CHAMPION,
        APPROVAL_TAG: outcome,
        APPROVAL_BY_TAG: by or ("nobody (timed out)" if outcome == TIMED_OUT else "unknown"),
        APPROVAL_AT_TAG: at.isoformat(),
        APPROVAL_COMMENT_TAG: (comment or "")[:MAX_COMMENT],
        APPROVAL_RUN_TAG: where,
    }


def require_approved(name: str, version: str, tags: Mapping[str, str], champion: str | None) -> None:
    """Raise unless a person approved this version (marking the approval task successful does not approve) for the
    comparison it won: against the version that is champion now (an approval given against v3 does not carry over
    to a registry where v2 is champion again after a rollback, N7)."""
    state = tags.get(APPROVAL_TAG)
    if state != APPROVED:
        raise NotApprovedError(
            f"{name} version {version} needs an approval to become champion and has "
            f"{APPROVAL_TAG}={state or 'none'}: answer its Required Action in Airflow (Approve); marking the "
            "approval task successful does not approve a version"
        )
    against = tags.get(APPROVAL_AGAINST_TAG)
    if against != (champion or NO_CHAMPION):
        raise NotApprovedError(
            f"{name} version {version} was approved against champion {against or 'unknown'}, but the champion is "
            f"{champion or NO_CHAMPION} now: the approval does not carry over; evaluate and approve it again (a new "
            "training run, or `mlops-ops model rollback` to choose a version by hand)"
        )


def _text(value: Any, limit: int = 120) -> str:
    """A value safe inside a Markdown table cell: no pipes, no HTML, no line breaks, bounded."""
    text = re.sub(r"[\r\n]+", " ", str(value))[:limit]
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.4f}"


def _delta(challenger: Any, champion: Any) -> str:
    if challenger is None or champion is None:
        return "-"
    return f"{float(challenger) - float(champion):+.4f}"


def _threshold(bounds: Mapping[str, Any] | None) -> str:
    if not bounds:
        return "-"
    parts = [f"≥ {bounds['min']}" if bounds.get("min") is not None else "",
             f"≤ {bounds['max']}" if bounds.get("max") is not None else ""]  # fmt: skip
    return ", ".join(p for p in parts if p) or "-"


def _link(label: str, url: str | None) -> str:
    """Only http(s) or same-origin links (``/...``) are written; anything else shows as text."""
    url = safe_link(url)
    if url:
        return f"[{_text(label)}]({url.replace(' ', '%20').replace(')', '%29')})"
    return _text(label)


def evidence_markdown(
    report: Mapping[str, Any],
    *,
    gate: Sequence[Mapping[str, Any]] = (),
    docs_url: str | None = None,
    drift: Mapping[str, Any] | None = None,
    run_type: str = "",
    links: Mapping[str, str] | None = None,
) -> str:
    """The body of the approval request: metrics with deltas and thresholds, slices, the gate's verdicts with their
    Data Docs, the drift that started the run, and links to the evaluation report and the version."""
    links = links or {}
    name, task = report.get("model_name", "?"), report.get("task", "?")
    challenger = report["challenger"]
    champion = report.get("champion")
    verdict = report.get("verdict") or {}
    thresholds = report.get("thresholds") or {}
    regression = report.get("max_regression") or {}
    lines = [
        f"### {_text(name)} v{_text(challenger['version'])}: "
        f"{'blessed' if verdict.get('blessed') else 'NOT blessed'} by the evaluation",
        "",
        f"Task **{_text(task)}**, split `{_text(report.get('split', 'test'))}` ({report.get('rows', '?')} rows). "
        + (f"Champion: v{_text(champion['version'])}." if champion else "There is no champion yet."),
        "",
        "| metric | challenger | champion | delta | trivial baseline | threshold | max regression |",
        "|---|---|---|---|---|---|---|",
    ]
    baseline = (report.get("baseline") or {}).get("metrics") or {}
    for metric in report.get("metrics", challenger["metrics"].keys()):
        ours = challenger["metrics"].get(metric)
        theirs = (champion or {}).get("metrics", {}).get(metric) if champion else None
        lines.append(
            f"| {_text(metric)} | {_number(ours)} | {_number(theirs)} | {_delta(ours, theirs)} | "
            f"{_number(baseline.get(metric))} | {_threshold(thresholds.get(metric))} | "
            f"{_number(regression.get(metric)) if metric in regression else '-'} |"
        )
    reasons = verdict.get("reasons") or []
    lines += ["", "**Verdict:** " + ("; ".join(_text(r, 300) for r in reasons) if reasons else "all checks passed")]
    if report.get("champion_skipped"):
        lines += ["", f"_{_text(report['champion_skipped'], 300)}_"]
    slices = report.get("slices") or {}
    if slices:
        metrics = list(report.get("metrics", []))[:4]
        lines += ["", f"#### Slices by `{_text(report.get('slice_column'))}`", "",
                  "| value | rows | " + " | ".join(_text(m) for m in metrics) + " |",
                  "|---|---|" + "---|" * len(metrics)]  # fmt: skip
        for value, block in list(slices.items())[:20]:
            lines.append(f"| {_text(value)} | {block.get('rows', '?')} | "
                         + " | ".join(_number(block.get(m)) for m in metrics) + " |")  # fmt: skip
    lines += ["", "#### Data quality gate (batches published since the champion's data)", ""]
    if gate:
        lines += ["| batch | suite | verdict | rows | expectations | failed | warnings | Data Docs |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for row in gate:
            page = f"{docs_url}/{row['docs_path']}" if docs_url and row.get("docs_path") else None
            lines.append(
                f"| {_text(row.get('batch_id'), 60)} | {_text(row.get('suite'))} | "
                f"{'passed' if row.get('passed') else 'FAILED'} | {row.get('rows')} | {row.get('evaluated')} | "
                f"{row.get('failed')} | {row.get('warnings')} | {_link('Data Docs', page) if page else '-'} |"
            )
    else:
        lines.append("No gated batch is recorded for the data added since the champion (no `quality` stage, or "
                     "only data the champion already saw).")  # fmt: skip
    lines += ["", "#### What started this run", ""]
    if drift:
        columns = ", ".join(_text(c, 60) for c in list(drift.get("drifted_columns") or {})[:10]) or "none"
        share = drift.get("drift_share")
        lines.append(
            f"Drift: share {_number(share)} of columns drifted ({columns}) against champion "
            f"v{_text(drift.get('champion_version', '?'))}: {_link('drift report', drift.get('report_url'))}"
        )
    else:
        lines.append(f"Not a drift signal (run type: {_text(run_type or 'unknown')}).")
    lines += ["", "#### Links", ""]
    for label, url in links.items():
        lines.append(f"- {_link(label, url)}")
    lines += ["", "Approve to make this version the champion; Reject (or no answer before the timeout) leaves the "
              "aliases as they are. Add a comment: it is kept on the model version."]  # fmt: skip
    return "\n".join(lines)
