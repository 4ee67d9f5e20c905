"""Trainers: ``sklearn`` (any scikit-learn estimator by class path), ``torch_mlp`` and your own ``module:function``.

The contract (typed, the same for the built-ins)::

    def my_trainer(data: TrainingData, *, params: dict[str, Any], log_metric: LogMetric) -> TrainedModel

``data`` holds the *encoded* train split (a float32 matrix: imputation, one-hot encoding and scaling already done by
the library, which saves the same encoding inside the model) and the targets: class codes ``0..K-1`` for
``binary`` (1 = the positive class) and ``multiclass`` (index into ``data.classes``), floats for ``regression``;
the validation split likewise, or ``None`` when the spec has no validation share. ``params`` are the spec's
``train.params`` merged with the run's ``train_params``. ``log_metric(name, value, step)`` records a metric.

Return ``TrainedModel(model, kind)`` where ``model`` is either

* ``kind="sklearn"``: an object with scikit-learn's API on the encoded matrix: ``predict_proba`` for
  classification (columns in code order), ``predict`` for regression; saved with skops, and the types it needs are
  listed for loading; or
* ``kind="torch"``: a ``torch.nn.Module`` mapping the encoded matrix to logits (one column for binary, K for
  multiclass) or values (regression); saved whole, so its class must be importable where the model is served.

Declare the tasks a trainer supports with ``my_trainer.tasks = ("binary", "multiclass")``; a run of another task
is refused before training. A trainer with ``my_trainer.streams = True`` gets ``data.stream(epoch)`` (and
``data.valid_stream``) yielding the encoded split one record batch at a time, with ``data.x``/``data.y`` a sample
of at most 200,000 rows (for shapes and statistics): memory stays bounded however large the split. See
docs/training.md for a worked example.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from mlops_ops._extras import require
from mlops_ops.callables import load_callable
from mlops_ops.exceptions import TrainingInputError
from mlops_ops.training.params_schema import ESTIMATOR_PATH
from mlops_ops.training.tasks import BUILT_IN_TRAINERS, TASKS

log = logging.getLogger(__name__)

LogMetric = Callable[[str, float, int], None]


Batches = Callable[[int], Iterator[tuple[Any, Any]]]


@dataclass
class TrainingData:
    task: str  # binary | multiclass | regression
    x: Any  # float32 numpy matrix of the encoded train split (a sample of it when ``stream`` is set)
    y: Any  # int64 class codes (classification) or float64 values (regression), row for row with ``x``
    x_valid: Any | None
    y_valid: Any | None
    classes: list[Any] | None  # labels in code order (binary: [negative, positive]); None for regression
    feature_names: list[str] = field(default_factory=list)  # columns of the encoded matrix
    stream: Batches | None = None  # streaming trainers: ``stream(epoch)`` yields (x, y) of the whole train split
    valid_stream: Batches | None = None  # likewise for validation (then x_valid / y_valid are None)

    @property
    def n_outputs(self) -> int:
        return len(self.classes) if self.task == "multiclass" and self.classes else 1


@dataclass
class TrainedModel:
    model: Any
    kind: Literal["sklearn", "torch"]
    trusted_types: list[str] = field(default_factory=list)  # extra types skops must be told are safe to load


Trainer = Callable[..., TrainedModel]


def estimator_class(path: str | None, task: str) -> Any:
    """The scikit-learn estimator class ``path`` names (default: histogram gradient boosting for the task)."""
    base = require("sklearn.base")
    BaseEstimator, is_classifier, is_regressor = base.BaseEstimator, base.is_classifier, base.is_regressor

    if path is None:
        ensemble = require("sklearn.ensemble")
        HistGradientBoostingClassifier = ensemble.HistGradientBoostingClassifier
        HistGradientBoostingRegressor = ensemble.HistGradientBoostingRegressor

        return HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
    if not re.match(ESTIMATOR_PATH, path):  # a run's train_params reach here too: import nothing else (N9)
        raise TrainingInputError(
            f"train.estimator {path[:200]!r} is refused: it must be a scikit-learn estimator class by its path, "
            "sklearn.<module>.<Class> (e.g. sklearn.linear_model.Ridge)"
        )
    module_name, _, name = path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise TrainingInputError(f"train.estimator '{path}' cannot be imported: {err}") from err
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise TrainingInputError(f"train.estimator '{path}' is not a scikit-learn estimator class")
    probe = cls()
    if task == "regression" and not is_regressor(probe):
        raise TrainingInputError(f"train.estimator '{path}' is not a regressor; task 'regression' needs one")
    if task != "regression" and not is_classifier(probe):
        raise TrainingInputError(f"train.estimator '{path}' is not a classifier; task '{task}' needs one")
    return cls


def sklearn_trainer(data: TrainingData, *, params: dict[str, Any], log_metric: LogMetric) -> TrainedModel:
    """Any scikit-learn estimator (``params["estimator"]``, a class path; set from ``train.estimator``)."""
    import inspect

    p = dict(params)
    cls = estimator_class(p.pop("estimator", None), data.task)
    seed = p.pop("seed", 42)
    if "random_state" in inspect.signature(cls).parameters:
        p.setdefault("random_state", seed)
    try:
        model = cls(**p)
    except TypeError as err:
        raise TrainingInputError(f"train.params do not fit {cls.__name__}: {err}") from err
    model.fit(data.x, data.y)
    if data.task != "regression" and not hasattr(model, "predict_proba"):
        raise TrainingInputError(f"{cls.__name__} has no predict_proba: the library needs class probabilities "
                         "(e.g. SVC needs probability: true in train.params)")  # fmt: skip
    for step, score in enumerate(getattr(model, "train_score_", [])):
        log_metric("train_score", float(score), step)
    return TrainedModel(model, "sklearn")


def torch_mlp_trainer(data: TrainingData, *, params: dict[str, Any], log_metric: LogMetric) -> TrainedModel:
    from mlops_ops.training.torch_mlp import fit_mlp

    return fit_mlp(data, params=params, log_metric=log_metric)


torch_mlp_trainer.streams = True  # type: ignore[attr-defined]  # reads the split batch by batch (bounded memory)


BUILT_IN: dict[str, Trainer] = {"sklearn": sklearn_trainer, "torch_mlp": torch_mlp_trainer}


def resolve(trainer: str, task: str) -> Trainer:
    """The trainer function; a trainer that does not support ``task`` is refused here, before any training."""
    if trainer in BUILT_IN:
        if task not in BUILT_IN_TRAINERS[trainer]:
            raise TrainingInputError(f"trainer '{trainer}' does not support task '{task}'")
        return BUILT_IN[trainer]
    if ":" not in trainer:
        raise TrainingInputError(f"trainer '{trainer}' is not one of {', '.join(BUILT_IN)} nor module.path:function")
    fn = load_callable(trainer, field="trainer")
    supported = tuple(getattr(fn, "tasks", TASKS))
    if task not in supported:
        raise TrainingInputError(f"trainer '{trainer}' supports task(s) {', '.join(supported)}, not '{task}'")
    return fn  # type: ignore[no-any-return]
