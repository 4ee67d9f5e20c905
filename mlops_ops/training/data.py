"""Read a split of a pinned feature-table snapshot into arrays a trainer can use (no Airflow imported).

The snapshot is named by a reference ``<pipeline>.features@<snapshot id>``; the catalog comes from the caller
or from pyiceberg's own configuration (``PYICEBERG_CATALOG__*`` variables, which the training operators set).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlops_ops.lake.tables import SPLIT_COLUMN, load_catalog, parse_snapshot_ref

NUMERIC_KINDS = "biuf"  # numpy kinds: bool, int, unsigned, float


@dataclass
class SplitData:
    features: Any  # pandas DataFrame of the feature columns, float64
    target: Any  # numpy array
    keys: Any  # numpy array of the key column (for slices and joins), or None
    frame: Any = None  # every column of the split, for slice metrics


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
        raise ValueError(f"{ident} has no snapshot {snapshot_id} (expired? `mlops-ops lake maintain` keeps the "
                         "snapshots registered model versions name)")  # fmt: skip
    return FeatureSnapshot(ref, table, snapshot_id, summary_of(snap))


def read_split(features: FeatureSnapshot, split: str) -> Any:
    """Every column of one split as pandas (without the split column)."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split must be train, validation or test, not {split!r}")
    frame = features.table.scan(snapshot_id=features.snapshot_id, row_filter=f"{SPLIT_COLUMN} == '{split}'").to_pandas()
    return frame.drop(columns=[SPLIT_COLUMN])


def load_split(
    features: FeatureSnapshot,
    split: str,
    target: str,
    *,
    feature_columns: list[str] | None = None,
) -> SplitData:
    """All rows of ``split`` as float features + target; non-numeric feature columns are an error."""
    frame = read_split(features, split)
    if frame.empty:
        raise ValueError(f"split '{split}' of the feature table {features.ref} has no rows")
    key = features.key_column
    if target not in frame.columns:
        raise ValueError(
            f"target '{target}' is not a column of the feature table (columns: {', '.join(frame.columns)})"
        )
    columns = feature_columns or [c for c in frame.columns if c not in (target, key)]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"feature column(s) {', '.join(missing)} missing from split '{split}'")
    bad = [c for c in columns if frame[c].dtype.kind not in NUMERIC_KINDS]
    if bad:
        raise ValueError(
            f"feature column(s) {', '.join(bad)} are not numeric: encode them in the preprocess transform "
            "(the trainers take numeric features only)"
        )
    features_frame = frame[columns].astype("float64").fillna(0.0)
    keys = frame[key].to_numpy() if key in frame.columns else None
    return SplitData(features=features_frame, target=frame[target].to_numpy(), keys=keys, frame=frame)
