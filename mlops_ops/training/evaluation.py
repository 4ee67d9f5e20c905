"""Champion/challenger evaluation: the same held-out split, metrics, slices, thresholds, a verdict.

A challenger is *blessed* when every configured metric is inside its absolute bounds and,
if a champion exists, no metric regressed by more than ``max_regression`` (in the
metric's own units, in its bad direction: down for accuracy/F1/ROC AUC/R², up for log
loss/RMSE/MAE). The verdict and the reasons go to the challenger's MLflow run (report JSON
and HTML) and to its model version's tags.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CLASSIFICATION = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSION = ("rmse", "mae", "r2")
LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}
CHAMPION = "champion"
CHALLENGER = "challenger"


def compute_metrics(task: str, y_true: Any, scores: Any, names: list[str] | None = None) -> dict[str, float]:
    """Metrics of one model on one split; ``scores`` are positive-class probabilities for classification."""
    import numpy as np
    from sklearn import metrics as m

    y = np.asarray(y_true).astype(float)
    s = np.asarray(scores, dtype=float).reshape(-1)
    wanted = names or list(CLASSIFICATION if task == "classification" else REGRESSION)
    out: dict[str, float] = {}
    for name in wanted:
        if task == "classification":
            if name not in CLASSIFICATION:
                raise ValueError(f"metric '{name}' does not apply to classification (use {', '.join(CLASSIFICATION)})")
            labels = (s >= 0.5).astype(float)
            if name == "accuracy":
                out[name] = float(m.accuracy_score(y, labels))
            elif name == "f1":
                out[name] = float(m.f1_score(y, labels, zero_division=0))
            elif name == "roc_auc":
                out[name] = float(m.roc_auc_score(y, s)) if len(set(y)) > 1 else float("nan")
            else:
                out[name] = float(m.log_loss(y, np.clip(s, 1e-7, 1 - 1e-7), labels=[0.0, 1.0]))
        else:
            if name not in REGRESSION:
                raise ValueError(f"metric '{name}' does not apply to regression (use {', '.join(REGRESSION)})")
            if name == "rmse":
                out[name] = float(np.sqrt(m.mean_squared_error(y, s)))
            elif name == "mae":
                out[name] = float(m.mean_absolute_error(y, s))
            else:
                out[name] = float(m.r2_score(y, s))
    return out


@dataclass
class Verdict:
    blessed: bool
    reasons: list[str] = field(default_factory=list)


def judge(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    thresholds: Mapping[str, Mapping[str, float | None]],
    max_regression: Mapping[str, float],
) -> Verdict:
    reasons: list[str] = []
    for name, bound in thresholds.items():
        value = challenger.get(name)
        if value is None or value != value:
            reasons.append(f"{name}: not computed")
            continue
        low, high = bound.get("min"), bound.get("max")
        if low is not None and value < low:
            reasons.append(f"{name} {value:.4f} is below the floor {low}")
        if high is not None and value > high:
            reasons.append(f"{name} {value:.4f} is above the ceiling {high}")
    if champion:
        for name, allowed in max_regression.items():
            new, old = challenger.get(name), champion.get(name)
            if new is None or old is None:
                continue
            worse = (new - old) if name in LOWER_IS_BETTER else (old - new)
            if worse > allowed:
                reasons.append(f"{name} regressed by {worse:.4f} versus the champion ({old:.4f} → {new:.4f}); "
                               f"allowed {allowed}")  # fmt: skip
    return Verdict(blessed=not reasons, reasons=reasons)


def scorer(model_uri: str) -> tuple[Any, list[str]]:
    """A function features → scores (probabilities for classifiers) and the model's input columns."""
    import mlflow

    info = mlflow.models.get_model_info(model_uri)
    columns = info.signature.inputs.input_names() if info.signature is not None else []
    if "sklearn" in info.flavors:
        model = mlflow.sklearn.load_model(model_uri)
        if hasattr(model, "predict_proba"):
            return (lambda x: model.predict_proba(x[columns])[:, 1]), columns
        return (lambda x: model.predict(x[columns])), columns
    if "pytorch" in info.flavors:
        import torch

        module = mlflow.pytorch.load_model(model_uri).eval()

        def predict(x: Any) -> Any:
            with torch.no_grad():
                return module(torch.as_tensor(x[columns].to_numpy(), dtype=torch.float32)).numpy()

        return predict, columns
    pyfunc = mlflow.pyfunc.load_model(model_uri)
    return (lambda x: pyfunc.predict(x[columns])), columns


def report_html(report: Mapping[str, Any]) -> str:
    """A small self-contained HTML page of the report (logged next to the JSON)."""
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{report['challenger']['metrics'].get(n, float('nan')):.4f}</td>"
        f"<td>{'' if not report.get('champion') else format(report['champion']['metrics'].get(n, float('nan')), '.4f')}"
        "</td></tr>"
        for n in report["metrics"]
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report["verdict"]["reasons"]) or "<li>none</li>"
    slices = html.escape(json.dumps(report.get("slices", {}), indent=1))
    state = "BLESSED" if report["verdict"]["blessed"] else "NOT BLESSED"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(report['model_name'])} evaluation"
        f"</title></head><body><h1>{html.escape(report['model_name'])} v{report['challenger']['version']}: {state}</h1>"
        f"<p>split: {report['split']} ({report['rows']} rows)</p><table border='1'><tr><th>metric</th>"
        f"<th>challenger</th><th>champion</th></tr>{rows}</table><h2>Reasons</h2><ul>{reasons}</ul>"
        f"<h2>Slices ({html.escape(str(report.get('slice_column')))})</h2><pre>{slices}</pre></body></html>"
    )
