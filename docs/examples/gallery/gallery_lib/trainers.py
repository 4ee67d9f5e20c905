"""A trainer of your own (``train.trainer: gallery_lib.trainers:ridge_trainer``): the documented contract."""

from __future__ import annotations

from typing import Any

from mlops_ops.training.trainers import LogMetric, TrainedModel, TrainingData


def ridge_trainer(data: TrainingData, *, params: dict[str, Any], log_metric: LogMetric) -> TrainedModel:
    """data.x / data.x_valid: the encoded float32 matrix (imputed, one-hot, standardised by the library);
    data.y / data.y_valid: class codes 0..K-1 (binary: 1 = positive class) or floats; data.classes: the labels."""
    from sklearn.linear_model import Ridge

    model = Ridge(alpha=float(params.get("alpha", 1.0))).fit(data.x, data.y)
    log_metric("train_r2", float(model.score(data.x, data.y)), 0)
    if data.x_valid is not None:
        log_metric("valid_r2", float(model.score(data.x_valid, data.y_valid)), 0)
    return TrainedModel(model, "sklearn")  # predict (regression) / predict_proba (classification) on the matrix


ridge_trainer.tasks = ("regression",)  # type: ignore[attr-defined]  # any other task is refused before training
