"""Read a split of a pinned feature-table snapshot into arrays a trainer can use (no Airflow imported).

The snapshot is named by a reference ``<pipeline>.features@<snapshot id>``; the catalog comes from the caller
or from pyiceberg's own configuration (``PYICEBERG_CATALOG__*`` variables, which the training operators set).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlops_ops.exceptions import TrainingInputError
from mlops_ops.lake.tables import SPLIT_COLUMN, load_catalog, parse_snapshot_ref

NUMERIC_KINDS = "biuf"  # numpy kinds: bool, int, unsigned, float


@dataclass
class FeatureSnapshot:
    ref: str
    table: Any
    snapshot_id: int
    summary: dict[str, str] = field(default_factory=dict)

    @property
    def key_column(self) -> str | None:
        return self.summary.get("mlops.key-column")

    @property
    def raw_snapshot(self) -> str | None:
        return self.summary.get("mlops.raw-snapshot")

    def split_rows(self, split: str) -> int:
        return int(json.loads(self.summary.get("mlops.split-rows", "{}")).get(split, 0))


def open_features(ref: str, catalog: Any = None) -> FeatureSnapshot:
    """The feature-table snapshot ``ref`` names (time travel: later builds don't change what it reads)."""
    from mlops_ops.lake.transaction import summary_of

    ident, snapshot_id = parse_snapshot_ref(ref)
    table = (catalog or load_catalog(None)).load_table(ident)
    snap = table.snapshot_by_id(snapshot_id)
    if snap is None:
        raise TrainingInputError(f"{ident} has no snapshot {snapshot_id} (expired? `mlops-ops lake maintain` keeps the "
                         "snapshots registered model versions name)")  # fmt: skip
    return FeatureSnapshot(ref, table, snapshot_id, summary_of(snap))


def read_split(features: FeatureSnapshot, split: str) -> Any:
    """Every column of one split as pandas (without the split column)."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be train, validation or test, not {split!r}")
    frame = features.table.scan(snapshot_id=features.snapshot_id, row_filter=f"{SPLIT_COLUMN} == '{split}'").to_pandas()
    return frame.drop(columns=[SPLIT_COLUMN])


def read_column(features: FeatureSnapshot, split: str, column: str) -> Any:
    """One column of one split (e.g. the train target for the trivial baseline) without reading the others."""
    scan = features.table.scan(snapshot_id=features.snapshot_id, row_filter=f"{SPLIT_COLUMN} == '{split}'",
                               selected_fields=(column,))  # fmt: skip
    return scan.to_pandas()[column]


def load_split(features: FeatureSnapshot, split: str, target: str) -> Any:
    """Every column of ``split`` as pandas; an empty split or a missing target is an error naming the table."""
    return checked(read_split(features, split), features, split, target)


def checked(frame: Any, features: FeatureSnapshot, split: str, target: str) -> Any:
    """``frame`` (rows of ``split``), refused when empty or without the target column."""
    if frame.empty:
        raise TrainingInputError(f"split '{split}' of the feature table {features.ref} has no rows")
    if target not in frame.columns:
        raise TrainingInputError(
            f"target '{target}' is not a column of the feature table (columns: {', '.join(frame.columns)})"
        )
    return frame


def python_value(value: Any) -> Any:
    """A numpy scalar as the Python value (JSON-able, comparable with the spec's ``positive_class``)."""
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class Labels:
    """The classes of a classification target, in code order (binary: ``[negative, positive]``)."""

    task: str
    classes: list[Any] | None
    positive_class: Any = None

    @classmethod
    def infer(cls, task: str, target: Any, positive_class: Any = None) -> Labels:
        """The labels of a target column held in memory (a pandas Series)."""
        import numpy as np

        present = target.dropna()
        values = [python_value(v) for v in np.unique(present.to_numpy())] if task != "regression" else []
        numeric = target.dtype.kind in NUMERIC_KINDS and target.dtype.kind != "b"
        return cls.of(task, str(target.name), values, len(target) - len(present), numeric, positive_class)

    @classmethod
    def of(
        cls, task: str, name: str, values: list[Any], nulls: int, numeric: bool, positive_class: Any = None
    ) -> Labels:
        """The labels from a target's distinct values and null count (however they were read)."""
        if task == "regression":
            if not numeric:
                raise TrainingInputError(f"task 'regression' needs a numeric target; '{name}' is not numeric")
            return cls(task, None)
        if nulls:
            raise TrainingInputError(f"target '{name}' has {nulls} missing value(s) in the train split: drop or "
                                     "label them in the preprocess transform")  # fmt: skip
        classes = sorted(values, key=lambda v: (str(type(v)), v))
        if task == "multiclass":
            if len(classes) < 2:
                raise TrainingInputError(f"target '{name}' has one class ({classes}) in the train split")
            return cls(task, classes)
        if len(classes) != 2:
            raise TrainingInputError(f"task 'binary' needs exactly two classes in target '{name}', found "
                             f"{len(classes)}: {classes[:10]}; use task 'multiclass'")  # fmt: skip
        if positive_class is None:
            positive_class = next((c for c in (True, 1, "1", "true", "yes") if c in classes), None)
            if positive_class is None:
                raise TrainingInputError(f"give train.positive_class: one of {classes} (the class the model predicts "
                                 "probabilities of)")  # fmt: skip
        match = [c for c in classes if c == positive_class or str(c) == str(positive_class)]
        if not match:
            raise TrainingInputError(f"train.positive_class {positive_class!r} is not a class of '{name}' "
                             f"(classes: {classes})")  # fmt: skip
        positive = match[0]
        return cls(task, [next(c for c in classes if c != positive), positive], positive)

    def encode(self, target: Any) -> Any:
        """Class codes (int64; -1 for a label the model does not know) or float64 values."""
        import numpy as np

        values = target.to_numpy() if hasattr(target, "to_numpy") else np.asarray(target)
        if self.classes is None:
            return values.astype("float64")
        codes = np.full(len(values), -1, dtype="int64")
        for i, label in enumerate(self.classes):
            codes[values == label] = i
        return codes

    def decode(self, codes: Any) -> list[Any]:
        assert self.classes is not None
        return [self.classes[int(c)] for c in codes]
