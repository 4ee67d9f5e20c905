"""HTML of the overview page: a table with one row per pipeline and two inline SVG charts each.

Self-contained (no scripts, no CDN): the API server may have no internet, and the page
is shown inside Airflow's UI frame.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

from mlops_ops.naming import safe_link
from mlops_ops.ui.links import model_version_url
from mlops_ops.ui.overview import PipelineRow, Point

STATE_COLOURS = {"success": "#1a7f37", "failed": "#cf222e", "running": "#0969da", "queued": "#8a6d3b"}


def sparkline(points: list[Point], *, title: str, colour: str, fixed_max: float | None = None) -> str:
    """A small line chart with a dot and a tooltip per point; a dash when there is nothing to draw."""
    if not points:
        return '<span class="none">—</span>'
    width, height, pad = 160, 40, 4
    values = [p.value for p in points]
    low = 0.0 if fixed_max is not None else min(values)
    high = fixed_max if fixed_max is not None else max(values)
    span = (high - low) or 1.0
    step = (width - 2 * pad) / max(len(points) - 1, 1)
    flat = high == low  # one point, or all equal: draw the line across the middle
    xy = [(pad + i * step, height / 2 if flat else height - pad - (v - low) / span * (height - 2 * pad))
          for i, v in enumerate(values)]  # fmt: skip
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"><title>{escape(p.at[:19])} '
        f"{escape(p.label)} {p.value:.4g}</title></circle>"
        for (x, y), p in zip(xy, points, strict=True)
    )
    return (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>'
        f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{line}"/>{dots}</svg>'
    )


def _state(value: str | None, text: str | None = None) -> str:
    """``value`` coloured as an Airflow state, shown as ``text`` (default: the state)."""
    if not value:
        return '<span class="none">—</span>'
    colour = STATE_COLOURS.get(value, "#57606a")
    return f'<span class="state" style="color:{colour}">{escape(text or value)}</span>'


def _dag_link(dag_id: str, text: str) -> str:
    return f'<a href="/dags/{quote(dag_id)}" target="_top">{escape(text)}</a>'


def _row(row: PipelineRow, mlflow_ui: str) -> str:
    champion = '<span class="none">no champion yet</span>'
    if row.champion_version:
        text = f"v{row.champion_version}"
        href = safe_link(model_version_url(mlflow_ui, row.model_name or "", row.champion_version))
        if href:
            text = f'<a href="{escape(href)}" target="_blank" rel="noopener">{escape(text)}</a>'
        metric = (f"{escape(row.key_metric or '')} {row.champion_metric:.4f}" if row.champion_metric is not None
                  else "")  # fmt: skip
        champion = f'{text} <span class="metric">{metric}</span>'
    gate = '<span class="none">not run</span>'
    if row.gate:
        passed = row.gate["state"] == "success"
        gate = _state("success" if passed else "failed", "passed" if passed else "failed")
        counts = f"{row.gate['batches']} batch(es), {row.gate['failed_expectations']} failed expectation(s)"
        gate += f' <span class="small">{counts}</span>'
        docs = safe_link(row.gate.get("data_docs_url"))
        if docs:
            gate += f' <a href="{escape(docs)}" target="_blank">Data Docs</a>'
    drift = '<span class="none">not checked</span>'
    if row.drift:
        share = row.drift.get("drift_share")
        drifted = bool(row.drift.get("drifted"))
        drift = _state("failed" if drifted else "success", "drift" if drifted else "no drift")
        drift += f' <span class="metric">share {share:.2f}</span>' if isinstance(share, int | float) else ""
        report = safe_link(row.drift.get("report_url"))
        if report:
            drift += f' <a href="{escape(report)}" target="_blank">report</a>'
    run = row.last_run or {}
    last_run = _state(run.get("state")) + (
        f' <span class="small">{escape(run.get("run_type", ""))}</span>' if run else ""
    )
    errors = "".join(f'<div class="error">{escape(e)}</div>' for e in row.errors)
    metric_name = row.key_metric or "metric"
    champion_chart = sparkline(row.champion_history, title=f"{metric_name} of each new champion", colour="#1a7f37")
    drift_chart = sparkline(row.drift_history, title="drift share per check", colour="#cf222e", fixed_max=1.0)
    return (
        f'<tr data-pipeline="{escape(row.pipeline)}"><td class="name">{escape(row.pipeline)}<div class="small">'
        f"{_dag_link(row.training_dag_id, 'training')} · {_dag_link(row.drift_dag_id, 'drift')}</div>{errors}</td>"
        f'<td class="champion">{champion}</td><td class="gate">{gate}</td><td class="drift">{drift}</td>'
        f'<td class="run">{last_run}</td>'
        f"<td>{champion_chart}</td><td>{drift_chart}</td></tr>"
    )


STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px;color:#1f2328;background:#fff}
h1{font-size:20px;margin:0 0 4px} p.lead{color:#57606a;margin:0 0 12px}
table{border-collapse:collapse;width:100%} th,td{border-bottom:1px solid #d0d7de;padding:8px;text-align:left;
vertical-align:top;font-size:14px} th{background:#f6f8fa;font-weight:600}
.small{font-size:12px;color:#57606a} .none{color:#8c959f} .state{font-weight:600}
.metric{font-variant-numeric:tabular-nums}
.error{color:#cf222e;font-size:12px} .name{font-weight:600} a{color:#0969da}
"""


def render(rows: list[PipelineRow], mlflow_ui: str) -> str:
    body = "".join(_row(r, mlflow_ui) for r in rows) or (
        '<tr><td colspan="7" class="none">No mlops-ops pipelines yet: add a spec to dags/pipelines/.</td></tr>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mlops-ops pipelines</title>'
        f"<style>{STYLE}</style></head><body><h1>ML pipelines</h1>"
        '<p class="lead">Champion from the MLflow registry; gate, drift and runs from Airflow. '
        '<a href="/mlops-ops/api/pipelines">JSON</a></p>'
        '<table id="pipelines"><thead><tr><th>pipeline</th><th>champion</th><th>last quality gate</th>'
        "<th>last drift check</th><th>last training run</th><th>champion metric</th><th>drift share</th></tr>"
        f"</thead><tbody>{body}</tbody></table></body></html>"
    )
