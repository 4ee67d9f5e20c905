"""The supervised tasks, their metrics and which way each metric is better: one table, read by the spec's
parse-time checks, the operators and the evaluation (no sklearn, numpy or Airflow imported here)."""

from __future__ import annotations

from typing import Literal

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[str, ...] = ("binary", "multiclass", "regression")

METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "log_loss", "brier"),
    "multiclass": ("accuracy", "f1_macro", "f1_weighted", "log_loss", "roc_auc_ovr"),
    "regression": ("rmse", "mae", "mape", "r2"),
}
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mae", "mape"})
# metrics a binary decision threshold can be tuned for on the validation split (they depend on the threshold)
TUNABLE = ("f1", "precision", "recall", "accuracy")

# built-in trainers and the tasks each supports; user trainers declare theirs with a ``tasks`` attribute
BUILT_IN_TRAINERS: dict[str, tuple[str, ...]] = {"sklearn": TASKS, "torch_mlp": TASKS}

# sklearn naming: classes ending like this are classifiers / regressors (checked again on the class at run time)
CLASSIFIER_SUFFIXES = ("Classifier", "LogisticRegression", "LogisticRegressionCV", "SVC", "NB")
REGRESSOR_SUFFIXES = ("Regressor", "LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet", "SVR")


def metric_problem(task: str, name: str, custom: frozenset[str] = frozenset()) -> str | None:
    """Why ``name`` cannot be computed for ``task`` (``None`` when it can)."""
    if name in custom or name in METRICS.get(task, ()):
        return None
    where = [t for t, names in METRICS.items() if name in names]
    allowed = ", ".join(METRICS.get(task, ()))
    if where:
        return f"'{name}' is a {' / '.join(where)} metric, not a {task} one; {task} metrics: {allowed}"
    return f"'{name}' is not a known metric; {task} metrics: {allowed} (or define it under evaluate.custom_metrics)"


def estimator_problem(task: str, path: str) -> str | None:
    """A sklearn estimator whose class name says it does the other kind of task (e.g. a Regressor for binary)."""
    name = path.rsplit(".", 1)[-1]
    if task == "regression" and name.endswith(CLASSIFIER_SUFFIXES):
        return f"'{path}' is a classifier; task 'regression' needs a regressor"
    if task != "regression" and name.endswith(REGRESSOR_SUFFIXES):
        return f"'{path}' is a regressor; task '{task}' needs a classifier"
    return None


def higher_is_better(name: str, custom: dict[str, bool] | None = None) -> bool:
    if custom and name in custom:
        return custom[name]
    return name not in LOWER_IS_BETTER
