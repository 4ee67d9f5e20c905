"""Which columns a model takes and how each is encoded: a ``ColumnTransformer`` of scikit-learn's own classes,
fitted on the train split and saved inside the model, so whoever loads ``models:/NAME@champion`` passes raw columns.

Kinds: ``numeric`` (imputed; standardised for trainers that need it), ``categorical`` (one-hot; rare and unseen
categories share one "infrequent" column), ``boolean`` (0/1), ``timestamp`` (year, month, day, weekday, hour and
days since 1970). A kind is inferred from the column's type unless the spec gives it. The raw-to-prepared step
(:func:`mlops_ops.training.serving.prepare`) lives in the file saved with the model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from mlops_ops._extras import require
from mlops_ops.exceptions import TrainingInputError
from mlops_ops.spec import FeaturesSpec
from mlops_ops.training.serving import TIMESTAMP_PARTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureColumns:
    kinds: dict[str, str]  # column -> numeric | categorical | boolean | timestamp, in the frame's order

    @property
    def names(self) -> list[str]:
        return list(self.kinds)

    def prepared(self, kind: str) -> list[str]:
        """Column names after :func:`~mlops_ops.training.serving.prepare` for raw columns of ``kind``."""
        columns = [c for c, k in self.kinds.items() if k == kind]
        return [f"{c}_{p}" for c in columns for p in TIMESTAMP_PARTS] if kind == "timestamp" else columns


def infer_kind(series: Any) -> str:
    import pandas as pd

    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    return "categorical"


def select_columns(frame: Any, spec: FeaturesSpec, *, target: str, excluded: tuple[str | None, ...]) -> FeatureColumns:
    """The feature columns of ``frame`` with their kinds; names the spec gives that the table lacks are an error."""
    available = [c for c in frame.columns if c != target and c not in excluded]
    named = [*(spec.include or []), *spec.exclude, *spec.types]
    missing = sorted({c for c in named if c not in frame.columns})
    if missing:
        raise TrainingInputError(
            f"train.features names column(s) {', '.join(missing)} that the feature table does not have "
            f"(its columns: {', '.join(available)})"
        )
    chosen = [c for c in (spec.include or available) if c not in spec.exclude]
    if spec.include is None:  # a column with no value in the train split teaches nothing (and would be required)
        empty = [c for c in chosen if frame[c].isna().all()]
        if empty:
            log.warning("feature column(s) %s have no value in the train split: left out", ", ".join(empty))
            chosen = [c for c in chosen if c not in empty]
    if not chosen:
        raise TrainingInputError("train.features leaves no feature column")
    return FeatureColumns({c: spec.types.get(c) or infer_kind(frame[c]) for c in chosen})


def build_preprocessor(columns: FeatureColumns, spec: FeaturesSpec, *, scale: bool) -> Any:
    """An unfitted ``ColumnTransformer`` from prepared columns to a dense float matrix."""
    ColumnTransformer = require("sklearn.compose").ColumnTransformer
    SimpleImputer = require("sklearn.impute").SimpleImputer
    make_pipeline = require("sklearn.pipeline").make_pipeline
    preprocessing = require("sklearn.preprocessing")
    OneHotEncoder, StandardScaler = preprocessing.OneHotEncoder, preprocessing.StandardScaler

    strategy, fill = {"median": ("median", None), "mean": ("mean", None), "zero": ("constant", 0.0)}[
        spec.impute.numeric
    ]
    numbers = [c for kind in ("numeric", "boolean", "timestamp") for c in columns.prepared(kind)]
    parts: list[tuple[str, Any, list[str]]] = []
    if numbers:
        steps: list[Any] = [SimpleImputer(strategy=strategy, fill_value=fill, keep_empty_features=True)]
        parts.append(("numeric", make_pipeline(*steps, *([StandardScaler()] if scale else [])), numbers))
    categorical = columns.prepared("categorical")
    if categorical:
        fill_strategy = "most_frequent" if spec.impute.categorical == "most_frequent" else "constant"
        parts.append(("categorical", make_pipeline(
            SimpleImputer(strategy=fill_strategy, fill_value="__missing__", missing_values=None,
                          keep_empty_features=True),
            OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=spec.max_categories,
                          sparse_output=False, dtype="float32"),
        ), categorical))  # fmt: skip
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0.0)
