"""The model every trainer's result is saved as: an MLflow pyfunc "model from code".

This file is stored with each model version and executed when the model is loaded, so a consumer needs only
MLflow, pandas and the estimator's library (scikit-learn, or torch), never mlops-ops. It imports nothing from
mlops-ops; training imports :func:`prepare` from here so both sides shape the columns with the same code.

``predict(frame of raw feature columns)`` returns a DataFrame:

* regression: ``prediction`` (float);
* classification: ``prediction`` (the class label, in the labels' own type) and one ``probability_<class>``
  column per class. Binary models apply their decision threshold to the positive class's probability.

Artifacts: ``meta.json`` (task, columns and kinds, classes, positive class, threshold, estimator kind and the
types skops may load), ``preprocessor.skops`` (the fitted ``ColumnTransformer``) and ``estimator.skops`` (an
sklearn-API estimator) or ``estimator.pt`` (a torch module mapping the encoded matrix to logits or values).
"""

from __future__ import annotations

import json
from typing import Any

# A model-from-code file: MLflow executes it on load, so it needs its imports at module level.
try:
    import mlflow
    import numpy as np
    import pandas as pd
except ImportError as err:  # not through mlops_ops._extras: this file must load wherever MLflow serves the model
    raise ImportError(f"mlops-ops models need {err.name!r}: pip install 'mlops-ops[mlflow,sklearn]'") from err

TIMESTAMP_PARTS = ("year", "month", "day", "weekday", "hour", "epoch_days")


def prepare(frame: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Raw feature columns → numeric (float64, NaN for missing) and categorical (str or None) columns.

    Booleans become 0/1 and timestamps six numbers each; a missing input column is an error naming it.
    """
    missing = [c for c in kinds if c not in frame.columns]
    if missing:
        raise ValueError(f"input lacks feature column(s) {', '.join(missing)}; the model takes {', '.join(kinds)}")
    out: dict[str, Any] = {}
    for column, kind in kinds.items():
        values = frame[column]
        if kind == "timestamp":
            stamps = pd.to_datetime(values, utc=True, errors="coerce")
            parts = {"year": stamps.dt.year, "month": stamps.dt.month, "day": stamps.dt.day,
                     "weekday": stamps.dt.weekday, "hour": stamps.dt.hour,
                     "epoch_days": (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds() / 86_400}  # fmt: skip
            for part in TIMESTAMP_PARTS:
                out[f"{column}_{part}"] = parts[part].astype("float64")
        elif kind == "categorical":
            text = values.astype("object")
            out[column] = text.where(text.notna(), None).map(lambda v: v if v is None else str(v)).astype("object")
        else:  # numeric, boolean
            out[column] = pd.to_numeric(values.astype("object").where(values.notna(), np.nan), errors="coerce")
            out[column] = out[column].astype("float64")
    return pd.DataFrame(out, index=frame.index)


def output_frame(meta: dict[str, Any], scores: np.ndarray, index: Any) -> pd.DataFrame:
    """Scores (values, positive-class probabilities or a probability matrix) → the prediction frame."""
    task = meta["task"]
    if task == "regression":
        return pd.DataFrame({"prediction": np.asarray(scores, dtype="float64").reshape(-1)}, index=index)
    classes = meta["classes"]
    if task == "binary":
        positive = np.asarray(scores, dtype="float64").reshape(-1)
        negative_class = next(c for c in classes if c != meta["positive_class"])
        labels = np.where(positive >= float(meta["threshold"]), meta["positive_class"], negative_class)
        proba = np.column_stack([1.0 - positive, positive])
        order = [negative_class, meta["positive_class"]]
    else:
        proba = np.asarray(scores, dtype="float64")
        labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
        order = classes
    frame = pd.DataFrame({"prediction": pd.Series(list(labels), index=index, dtype=_label_dtype(classes))})
    for i, label in enumerate(order):
        frame[f"probability_{label}"] = proba[:, i]
    return frame[["prediction", *(f"probability_{c}" for c in classes)]]


def _label_dtype(classes: list[Any]) -> str:
    if all(isinstance(c, bool) for c in classes):
        return "bool"
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return "int64"
    return "object"


class TabularModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc, name-defined]
    """Raw columns in, predictions out (see the module docstring)."""

    def load_context(self, context: Any) -> None:
        import warnings

        with open(context.artifacts["meta"]) as fh:
            self.meta = json.load(fh)
        trusted = self.meta.get("trusted_types", [])
        with warnings.catch_warnings():
            # skops looks names up across every imported module (on import, too); libraries with deprecated lazy
            # attributes (Airflow has hundreds) would warn once per attribute
            warnings.filterwarnings("ignore", module=r"skops\.")
            import skops.io

            self.preprocessor = skops.io.load(context.artifacts["preprocessor"], trusted=trusted)
            if self.meta["estimator_kind"] != "torch":
                self.estimator = skops.io.load(context.artifacts["estimator"], trusted=trusted)
        if self.meta["estimator_kind"] == "torch":
            import torch

            self.module = torch.load(context.artifacts["estimator"], weights_only=False, map_location="cpu").eval()

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        """Values (regression), positive-class probabilities (binary) or the probability matrix (multiclass)."""
        encoded = np.asarray(self.preprocessor.transform(prepare(frame, self.meta["kinds"])), dtype="float32")
        task = self.meta["task"]
        if self.meta["estimator_kind"] == "torch":
            import torch

            with torch.no_grad():
                out = self.module(torch.from_numpy(encoded))
                if task == "binary":
                    return torch.sigmoid(out.reshape(-1)).numpy().astype("float64")
                if task == "multiclass":
                    return torch.softmax(out, dim=1).numpy().astype("float64")
                return out.reshape(-1).numpy().astype("float64")
        if task == "regression":
            return np.asarray(self.estimator.predict(encoded), dtype="float64")
        proba = np.asarray(self.estimator.predict_proba(encoded), dtype="float64")
        return proba[:, int(self.meta["positive_index"])] if task == "binary" else proba

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return output_frame(self.meta, self.scores(model_input), model_input.index)


mlflow.models.set_model(TabularModel())
