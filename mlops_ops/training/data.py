"""Read a split of a feature table (from its manifest) into arrays a trainer can use."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlops_ops.lake.catalog import read_frame
from mlops_ops.lake.store import lake_path

NUMERIC_KINDS = "biuf"  # numpy kinds: bool, int, unsigned, float


@dataclass
class SplitData:
    features: Any  # pandas DataFrame of the feature columns, float64
    target: Any  # numpy array
    keys: Any  # numpy array of the key column (for slices and joins), or None
    frame: Any = None  # every column of the split, for slice metrics


def read_manifest(manifest_uri: str, conn_id: str | None = "aws_default") -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads(lake_path(manifest_uri, conn_id).read_bytes())
    if manifest.get("kind") != "features":
        raise ValueError(f"{manifest_uri} is not a feature-table manifest (kind: {manifest.get('kind')!r})")
    return manifest


def load_split(
    manifest: dict[str, Any],
    split: str,
    target: str,
    *,
    conn_id: str | None = "aws_default",
    feature_columns: list[str] | None = None,
) -> SplitData:
    """All rows of ``split`` as float features + target; non-numeric feature columns are an error."""
    files = manifest["splits"].get(split) or []
    if not files:
        raise ValueError(f"split '{split}' of the feature table {manifest['run_key']} has no rows")
    frame = read_frame(files, conn_id)
    key = manifest.get("build", {}).get("key_column")
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
    features = frame[columns].astype("float64").fillna(0.0)
    keys = frame[key].to_numpy() if key in frame.columns else None
    return SplitData(features=features, target=frame[target].to_numpy(), keys=keys, frame=frame)
