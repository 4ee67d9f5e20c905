"""Trainers: ``sklearn``, ``torch_mlp`` and user trainers given as ``module:function``.

A trainer is ``fn(train, validation, *, task, params, log_metric) -> TrainedModel``:
``train``/``validation`` are :class:`~mlops_ops.training.data.SplitData`, ``log_metric(name,
value, step)`` records a metric, and the result names the MLflow flavor that logs the model.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Task = Literal["classification", "regression"]
LogMetric = Callable[[str, float, int], None]


@dataclass
class TrainedModel:
    model: Any
    flavor: Literal["sklearn", "pytorch"]
    predict: Callable[[Any], Any]  # features DataFrame -> class probabilities (classification) or values
    trusted_types: list[str] | None = None  # sklearn types MLflow's skops format must be told are safe


def sklearn_trainer(
    train: Any, validation: Any, *, task: Task, params: dict[str, Any], log_metric: LogMetric
) -> TrainedModel:
    """Histogram gradient boosting (fast, handles unscaled features); ``params`` go to the estimator."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    defaults: dict[str, Any] = {"max_iter": 200, "learning_rate": 0.1, "random_state": int(params.pop("seed", 42))}
    estimator_cls = HistGradientBoostingClassifier if task == "classification" else HistGradientBoostingRegressor
    model = estimator_cls(**{**defaults, **params})
    model.fit(train.features, train.target)
    for step, score in enumerate(getattr(model, "train_score_", [])):
        log_metric("train_score", float(score), step)
    # we built this model in this process: its tree predictor type is safe to load back
    trusted = ["sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"]
    if task == "classification":
        return TrainedModel(model, "sklearn", lambda x: model.predict_proba(x)[:, 1], trusted)
    return TrainedModel(model, "sklearn", model.predict, trusted)


def torch_mlp_trainer(
    train: Any, validation: Any, *, task: Task, params: dict[str, Any], log_metric: LogMetric
) -> TrainedModel:
    from mlops_ops.training.torch_mlp import fit_mlp

    return fit_mlp(train, validation, task=task, params=params, log_metric=log_metric)


BUILT_IN: dict[str, Callable[..., TrainedModel]] = {"sklearn": sklearn_trainer, "torch_mlp": torch_mlp_trainer}


def resolve(trainer: str) -> Callable[..., TrainedModel]:
    if trainer in BUILT_IN:
        return BUILT_IN[trainer]
    module_name, sep, attr = trainer.partition(":")
    if not sep:
        raise ValueError(f"trainer '{trainer}' is not one of {', '.join(BUILT_IN)} nor module.path:function")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"trainer '{trainer}' cannot be imported: {err}") from err
    return fn  # type: ignore[no-any-return]
