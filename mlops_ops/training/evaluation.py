"""Champion/challenger evaluation: the same held-out split, metrics of the task, a trivial baseline, slices,
thresholds, a verdict, and a report with pictures.

A challenger is *blessed* when every threshold holds, it beats the trivial baseline (the train split's class
frequencies / mean) on the first metric, and, if a champion exists, no metric regressed by more than
``max_regression`` (in the metric's own units, in its bad direction). The verdict and the reasons go to the
challenger's MLflow run (report JSON, HTML and PNGs) and to its model version's tags.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from mlops_ops._extras import require
from mlops_ops.callables import load_callable
from mlops_ops.training.tasks import METRICS, higher_is_better

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Predictions:
    """What a model said about rows: per task, values; positive-class probabilities; or a probability matrix."""

    task: str
    scores: Any  # numpy: values (regression), P(positive) (binary), (n, K) probabilities (multiclass)
    threshold: float = 0.5

    def labels(self) -> Any:
        """Predicted class codes (classification)."""
        import numpy as np

        if self.task == "binary":
            return (np.asarray(self.scores) >= self.threshold).astype("int64")
        return np.asarray(self.scores).argmax(axis=1)


@dataclass(frozen=True)
class CustomMetric:
    function: str  # module.path:function
    higher_is_better: bool = True
    uses: str = "predictions"

    def compute(self, y: Any, predictions: Predictions, classes: list[Any] | None) -> float:
        fn = load_callable(self.function, field="custom metric")
        if predictions.task == "regression":
            return float(fn(y, predictions.scores))
        if self.uses == "probabilities":
            return float(fn(_decode(y, classes), predictions.scores))
        return float(fn(_decode(y, classes), _decode(predictions.labels(), classes)))


def _decode(codes: Any, classes: list[Any] | None) -> Any:
    import numpy as np

    if classes is None:
        return codes
    lookup = np.asarray([*classes, None], dtype=object)  # code -1 (a label the model never saw) -> None
    return lookup[np.asarray(codes)]


def compute_metrics(
    y: Any,
    predictions: Predictions,
    names: list[str],
    *,
    classes: list[Any] | None = None,
    custom: Mapping[str, CustomMetric] | None = None,
) -> dict[str, float]:
    """Metrics of one model on one split. ``y`` holds class codes (``-1``: a label the model does not know: it
    counts as an error in label metrics and is left out of probability metrics) or values."""
    import numpy as np

    m = require("sklearn.metrics")

    task = predictions.task
    y = np.asarray(y)
    out: dict[str, float] = {}
    for name in names:
        if custom and name in custom:
            out[name] = custom[name].compute(y, predictions, classes)
            continue
        if name not in METRICS[task]:
            raise ValueError(f"metric '{name}' does not apply to task '{task}' (use {', '.join(METRICS[task])})")
        out[name] = _builtin(m, np, task, name, y, predictions)
    return out


def _builtin(m: Any, np: Any, task: str, name: str, y: Any, p: Predictions) -> float:
    nan = float("nan")
    if task == "regression":
        s = np.asarray(p.scores, dtype="float64")
        yf = y.astype("float64")
        if name == "rmse":
            return float(np.sqrt(m.mean_squared_error(yf, s)))
        if name == "mae":
            return float(m.mean_absolute_error(yf, s))
        if name == "mape":
            return float(m.mean_absolute_percentage_error(yf, s))
        return float(m.r2_score(yf, s))
    labels = p.labels()
    known = y >= 0
    if task == "binary":
        s = np.asarray(p.scores, dtype="float64")
        both = len(set(y[known].tolist())) == 2
        if name == "accuracy":
            return float(m.accuracy_score(y, labels))
        if name in ("f1", "precision", "recall"):
            fn = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score}[name]
            return float(fn(y, labels, labels=[1], average="micro", zero_division=0))  # = binary, pos_label 1
        if name == "roc_auc":
            return float(m.roc_auc_score(y[known], s[known])) if both else nan
        if name == "pr_auc":
            return float(m.average_precision_score(y[known], s[known])) if both else nan
        if name == "log_loss":
            return float(m.log_loss(y[known], np.clip(s[known], 1e-7, 1 - 1e-7), labels=[0, 1]))
        return float(m.brier_score_loss(y[known], s[known]))  # brier
    proba = np.asarray(p.scores, dtype="float64")
    k = proba.shape[1]
    if name == "accuracy":
        return float(m.accuracy_score(y, labels))
    if name in ("f1_macro", "f1_weighted"):
        return float(m.f1_score(y, labels, labels=list(range(k)), average=name[3:], zero_division=0))
    if name == "log_loss":
        rows = proba[known] / proba[known].sum(axis=1, keepdims=True)  # float32 models sum to 1 only roughly
        return float(m.log_loss(y[known], rows, labels=list(range(k))))
    present = set(y[known].tolist())
    if len(present) < k:  # roc_auc_ovr needs every class in the split
        return nan
    return float(m.roc_auc_score(y[known], proba[known], multi_class="ovr", labels=list(range(k))))


def baseline_predictions(task: str, train_y: Any, rows: int, n_classes: int, threshold: float) -> Predictions:
    """The trivial model: the train split's class frequencies for every row, or its mean."""
    import numpy as np

    y = np.asarray(train_y)
    if task == "regression":
        return Predictions(task, np.full(rows, float(np.mean(y))))
    freq = np.bincount(y[y >= 0], minlength=n_classes).astype("float64")
    freq /= max(freq.sum(), 1.0)
    if task == "binary":
        return Predictions(task, np.full(rows, freq[1]), threshold)
    return Predictions(task, np.tile(freq, (rows, 1)))


@dataclass
class Verdict:
    blessed: bool
    reasons: list[str] = field(default_factory=list)


def _computed(value: float | None) -> TypeGuard[float]:
    return value is not None and value == value  # NaN is the one float unequal to itself


def judge(
    challenger: Mapping[str, float],
    champion: Mapping[str, float] | None,
    thresholds: Mapping[str, Mapping[str, float | None]],
    max_regression: Mapping[str, float],
    *,
    baseline: Mapping[str, float] | None = None,
    key_metric: str | None = None,
    directions: Mapping[str, bool] | None = None,
) -> Verdict:
    reasons: list[str] = []
    for name, bound in thresholds.items():
        value = challenger.get(name)
        if not _computed(value):
            reasons.append(f"{name}: not computed")
            continue
        low, high = bound.get("min"), bound.get("max")
        if low is not None and value < low:
            reasons.append(f"{name} {value:.4f} is below the floor {low}")
        if high is not None and value > high:
            reasons.append(f"{name} {value:.4f} is above the ceiling {high}")
    if baseline is not None and key_metric is not None:
        new, trivial = challenger.get(key_metric), baseline.get(key_metric)
        if not _computed(new):  # NaN compares false both ways: it must never pass as "not worse"
            reasons.append(f"{key_metric}: not computed on the test split (e.g. one class only), so it cannot be "
                           "shown to beat the trivial baseline")  # fmt: skip
        elif _computed(trivial):
            up = higher_is_better(key_metric, dict(directions or {}))
            if not (new > trivial if up else new < trivial):
                reasons.append(f"{key_metric} {new:.4f} does not beat the trivial baseline's {trivial:.4f} "
                               "(class frequencies / the mean of the train split)")  # fmt: skip
    if champion:
        for name, allowed in max_regression.items():
            new, old = challenger.get(name), champion.get(name)
            if not (_computed(new) and _computed(old)):
                side = "the challenger's" if not _computed(new) else "the champion's"
                reasons.append(f"{name}: {side} value was not computed on the test split, so no regression check "
                               f"is possible (allowed {allowed})")  # fmt: skip
                continue
            up = higher_is_better(name, dict(directions or {}))
            worse = (old - new) if up else (new - old)
            if worse > allowed:
                reasons.append(f"{name} regressed by {worse:.4f} versus the champion ({old:.4f} → {new:.4f}); "
                               f"allowed {allowed}")  # fmt: skip
    return Verdict(blessed=not reasons, reasons=reasons)


class ModelScorer:
    """A registered model loaded as pyfunc: its metadata (task, classes, threshold) and its predictions."""

    def __init__(self, model_uri: str) -> None:
        mlflow = require("mlflow")

        self.uri = model_uri
        self.pyfunc = mlflow.pyfunc.load_model(model_uri)
        try:
            inner = self.pyfunc.unwrap_python_model()
        except Exception:  # noqa: BLE001 - not a python model: a flavor this library did not write
            inner = None
        self.meta: dict[str, Any] | None = getattr(inner, "meta", None)
        self.inner = inner
        signature = self.pyfunc.metadata.signature
        self.columns: list[str] = signature.inputs.input_names() if signature is not None else []

    @property
    def ours(self) -> bool:
        return self.meta is not None and hasattr(self.inner, "scores")

    def predictions(self, frame: Any) -> Predictions:
        if not self.ours:
            raise ValueError(f"{self.uri} was not saved by this version of mlops-ops (no task metadata)")
        assert self.meta is not None and self.inner is not None
        return Predictions(self.meta["task"], self.inner.scores(frame), float(self.meta.get("threshold", 0.5)))

    def signal(self, frame: Any) -> Any:
        """One column per row for drift checks: the value, P(positive), or the predicted label."""
        import numpy as np

        if not self.ours:
            out = self.pyfunc.predict(frame[self.columns])
            return np.asarray(out["prediction"] if hasattr(out, "columns") else out).reshape(-1)
        p = self.predictions(frame)
        if p.task == "multiclass":
            assert self.meta is not None
            return np.asarray([str(c) for c in _decode(p.labels(), self.meta["classes"])], dtype=object)
        return np.asarray(p.scores, dtype="float64")


def confusion_png(y: Any, predicted: Any, classes: list[Any]) -> bytes:
    confusion_matrix = require("sklearn.metrics").confusion_matrix

    import_pyplot = _pyplot()
    k = len(classes)
    matrix = confusion_matrix(y, predicted, labels=list(range(k)))
    fig, ax = import_pyplot.subplots(figsize=(1.2 + 0.6 * k, 1.0 + 0.6 * k), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8)
    names = [str(c)[:12] for c in classes]
    ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("confusion matrix")
    return _png(import_pyplot, fig)


def residuals_png(y: Any, predicted: Any) -> bytes:
    import numpy as np

    plt = _pyplot()
    y, predicted = np.asarray(y, dtype="float64"), np.asarray(predicted, dtype="float64")
    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    ax.scatter(predicted, y - predicted, s=4, alpha=0.4)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual - predicted")
    ax.set_title("residuals")
    return _png(plt, fig)


def slices_png(slices: Mapping[str, Mapping[str, float]], metric: str) -> bytes:
    plt = _pyplot()
    names = list(slices)[:30]
    values = [float(slices[n].get(metric, float("nan"))) for n in names]
    fig, ax = plt.subplots(figsize=(5, 0.6 + 0.3 * len(names)), dpi=100)
    ax.barh([n[:20] for n in names], values)
    ax.set_xlabel(metric)
    ax.set_title(f"{metric} by slice")
    return _png(plt, fig)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(plt: Any, fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def report_html(report: Mapping[str, Any], pictures: Mapping[str, bytes]) -> str:
    """A self-contained HTML page of the report (pictures inline), logged next to the JSON."""

    def cell(side: str, name: str) -> str:
        block = report.get(side)
        return "" if not block else format(block["metrics"].get(name, float("nan")), ".4f")

    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{cell('challenger', n)}</td><td>{cell('champion', n)}</td>"
        f"<td>{cell('baseline', n)}</td></tr>"
        for n in report["metrics"]
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report["verdict"]["reasons"]) or "<li>none</li>"
    slices = html.escape(json.dumps(report.get("slices", {}), indent=1))
    images = "".join(
        f"<figure><img alt='{html.escape(name)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
        for name, png in pictures.items()
    )
    state = "BLESSED" if report["verdict"]["blessed"] else "NOT BLESSED"
    title = html.escape(report["model_name"])
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title} evaluation</title></head><body>"
        f"<h1>{title} v{html.escape(str(report['challenger']['version']))}: {state}</h1>"
        f"<p>task: {html.escape(report['task'])}; split: {html.escape(report['split'])} ({report['rows']} rows)</p>"
        "<table border='1'><tr><th>metric</th><th>challenger</th><th>champion</th><th>trivial baseline</th></tr>"
        f"{rows}</table><h2>Reasons</h2><ul>{reasons}</ul>{images}"
        f"<h2>Slices ({html.escape(str(report.get('slice_column')))})</h2><pre>{slices}</pre></body></html>"
    )
