"""Streaming trainers read a feature snapshot batch by batch from a real Iceberg table (SQL catalog, local files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mlops_ops.spec import FeaturesSpec, ModelSpec
from mlops_ops.training import serving
from mlops_ops.training.data import FeatureSnapshot
from mlops_ops.training.run import prepare_splits
from mlops_ops.training.trainers import torch_mlp_trainer
from tests.unit.training.test_models import frame


@pytest.fixture
def snapshot(tmp_path: Path) -> FeatureSnapshot:
    """A features table of 4 files (appends), hash-split like the library's, with the summary keys it writes."""
    import json

    from pyiceberg.catalog.sql import SqlCatalog

    (tmp_path / "wh").mkdir()
    catalog = SqlCatalog("t", uri=f"sqlite:///{tmp_path}/c.db", warehouse=f"file://{tmp_path}/wh")
    catalog.create_namespace("p")
    data = frame(8_000, seed=3)
    data["_split"] = np.where(np.arange(len(data)) % 10 < 8, "train", "validation")
    data["at"] = data["at"].astype("datetime64[us, UTC]")  # Iceberg keeps microseconds
    arrow = pa.Table.from_pandas(data, preserve_index=False)
    table = catalog.create_table("p.features", schema=arrow.schema)
    for part in range(4):
        table.append(arrow.slice(part * 2_000, 2_000))
    table = table.refresh()
    snap = table.current_snapshot()
    summary = {"mlops.key-column": "id", "mlops.split-rows": json.dumps({"train": 6_400, "validation": 1_600})}
    return FeatureSnapshot(f"p.features@{snap.snapshot_id}", table, snap.snapshot_id, summary)


def test_the_stream_covers_the_split_once_per_epoch_in_a_shuffled_file_order(snapshot: FeatureSnapshot) -> None:
    settings = ModelSpec(task="multiclass", target="label", features=FeaturesSpec(exclude=["amount", "churn"]))
    prepared = prepare_splits(snapshot, settings, stream=True)
    data = prepared.data
    assert data.stream is not None and data.valid_stream is not None and data.x_valid is None
    epochs = [[len(y) for _, y in data.stream(epoch)] for epoch in range(3)]
    assert all(sum(sizes) == 6_400 for sizes in epochs)
    assert sum(len(y) for _, y in data.valid_stream(0)) == 1_600
    first = [tuple(y[:5]) for _, y in data.stream(0)]
    assert any([tuple(y[:5]) for _, y in data.stream(e)] != first for e in (1, 2, 3))  # file order changes
    x, _ = next(iter(data.stream(0)))
    assert x.dtype == np.float32 and x.shape[1] == data.x.shape[1] == len(data.feature_names)


@pytest.mark.torch
def test_torch_trains_on_the_stream_and_the_saved_model_predicts(snapshot: FeatureSnapshot) -> None:
    settings = ModelSpec(task="multiclass", target="label", features=FeaturesSpec(exclude=["amount", "churn"]))
    prepared = prepare_splits(snapshot, settings, stream=True)
    logged: list[tuple[str, float, int]] = []
    trained = torch_mlp_trainer(prepared.data, params={"epochs": 20, "hidden": [32], "lr": 0.01},
                                log_metric=lambda *a: logged.append(a))  # fmt: skip
    assert len([m for m in logged if m[0] == "val_loss"]) >= 3
    model = serving.TabularModel()
    model.meta = {"task": "multiclass", "kinds": prepared.columns.kinds, "classes": prepared.labels.classes,
                  "positive_class": None, "positive_index": 1, "threshold": 0.5, "estimator_kind": "torch"}  # fmt: skip
    model.preprocessor, model.module = prepared.preprocessor, trained.model
    fresh = frame(1_000, seed=11)
    accuracy = float((model.predict(None, fresh)["prediction"] == fresh["label"]).mean())
    assert accuracy > 0.75, accuracy


@pytest.mark.torch
def test_a_binary_threshold_is_tuned_on_the_streamed_validation_split(snapshot: Any) -> None:
    from mlops_ops.spec import TuneThreshold
    from mlops_ops.training.run import _threshold

    settings = ModelSpec(task="binary", target="churn", positive_class="yes", threshold=TuneThreshold(tune="f1"),
                         features=FeaturesSpec(exclude=["amount", "label"]))  # fmt: skip
    prepared = prepare_splits(snapshot, settings, stream=True)
    assert prepared.labels.classes == ["no", "yes"]
    trained = torch_mlp_trainer(prepared.data, params={"epochs": 5}, log_metric=lambda *a: None)
    assert 0.0 < _threshold(settings.threshold, trained, prepared) < 1.0


def test_in_memory_trainers_sample_down_to_max_rows_with_a_warning(
    snapshot: FeatureSnapshot, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ModelSpec(task="regression", target="amount", max_rows=1_000,
                         features=FeaturesSpec(exclude=["label", "churn"]))  # fmt: skip
    with caplog.at_level("WARNING"):
        prepared = prepare_splits(snapshot, settings)
    assert prepared.sampled_from == 6_400 and len(prepared.data.y) == 1_000 and prepared.data.stream is None
    assert "sampling 1000 (train.max_rows)" in caplog.text
    assert prepared.data.x_valid is not None and len(prepared.data.x_valid) == 1_600  # validation is not sampled
