"""The training core without services: feature encoding, labels, each trainer on each task, the saved model's
predictions on raw columns, metrics, the trivial baseline and threshold tuning."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_ops.spec import FeaturesSpec
from mlops_ops.training import serving
from mlops_ops.training.data import Labels
from mlops_ops.training.evaluation import Predictions, baseline_predictions, compute_metrics, judge
from mlops_ops.training.features import build_preprocessor, select_columns
from mlops_ops.training.run import tune_threshold
from mlops_ops.training.trainers import TrainingData, resolve


def frame(n: int, seed: int = 0) -> pd.DataFrame:
    """Mixed column types with missing values; three targets that depend on them."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    flag = rng.random(n) < 0.5
    stamps = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 86_400 * 30, n), unit="s")
    score = 2.0 * x1 + np.where(colour == "red", 2.0, 0.0) + np.where(flag, 1.0, -1.0) + rng.normal(0, 0.3, n)
    out = pd.DataFrame({"id": [f"k{i}" for i in range(n)], "x1": x1, "colour": colour, "flag": flag,
                        "at": stamps, "amount": score * 10 + 100})  # fmt: skip
    out.loc[::17, "x1"] = np.nan
    out.loc[::23, "colour"] = None
    out["label"] = np.where(score > 1.0, "high", np.where(score > -1.0, "mid", "low"))
    out["churn"] = np.where(score > 0.5, "yes", "no")
    return out


def fit(task: str, trainer: str, params: dict[str, Any], target: str, train: pd.DataFrame, valid: pd.DataFrame,
        positive: Any = None) -> serving.TabularModel:  # fmt: skip
    spec = FeaturesSpec(exclude=["amount", "label", "churn"])
    columns = select_columns(train, spec, target=target, excluded=("id",))
    labels = Labels.infer(task, train[target], positive)
    pre = build_preprocessor(columns, spec, scale=True)
    x = pre.fit_transform(serving.prepare(train, columns.kinds)).astype("float32")
    xv = pre.transform(serving.prepare(valid, columns.kinds)).astype("float32")
    data = TrainingData(task, x, labels.encode(train[target]), xv, labels.encode(valid[target]), labels.classes)
    trained = resolve(trainer, task)(data, params=params, log_metric=lambda *a: None)
    model = serving.TabularModel()
    model.meta = {"task": task, "kinds": columns.kinds, "classes": labels.classes,
                  "positive_class": labels.positive_class, "positive_index": 1, "threshold": 0.5,
                  "estimator_kind": trained.kind}  # fmt: skip
    model.preprocessor = pre
    model.module = model.estimator = trained.model
    return model


@pytest.fixture(scope="module")
def splits() -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame(3000, 0), frame(800, 1)


def test_kinds_are_inferred_and_spec_names_are_checked(splits) -> None:  # type: ignore[no-untyped-def]
    train, _ = splits
    columns = select_columns(train, FeaturesSpec(exclude=["label", "churn"]), target="amount", excluded=("id",))
    assert columns.kinds == {"x1": "numeric", "colour": "categorical", "flag": "boolean", "at": "timestamp"}
    with pytest.raises(ValueError, match="nope"):
        select_columns(train, FeaturesSpec(include=["x1", "nope"]), target="amount", excluded=("id",))
    empty = train.assign(old=np.nan)  # e.g. a column a changed transform no longer fills
    assert "old" not in select_columns(empty, FeaturesSpec(), target="amount", excluded=("id",)).kinds


def test_labels(splits) -> None:  # type: ignore[no-untyped-def]
    train, _ = splits
    assert Labels.infer("multiclass", train["label"]).classes == ["high", "low", "mid"]
    with pytest.raises(ValueError, match="positive_class"):
        Labels.infer("binary", train["churn"].map({"yes": "a", "no": "b"}))
    binary = Labels.infer("binary", train["churn"], "yes")
    assert binary.classes == ["no", "yes"] and binary.encode(pd.Series(["yes", "no", "maybe"])).tolist() == [1, 0, -1]
    assert Labels.infer("binary", pd.Series([True, False, True])).positive_class is True
    with pytest.raises(ValueError, match="exactly two classes"):
        Labels.infer("binary", train["label"], "high")
    with pytest.raises(ValueError, match="numeric target"):
        Labels.infer("regression", train["label"])


@pytest.mark.parametrize("trainer,params", [
    ("sklearn", {"estimator": "sklearn.linear_model.LogisticRegression", "max_iter": 300}),
    ("sklearn", {}),
    pytest.param("torch_mlp", {"epochs": 30, "hidden": [32], "lr": 0.01}, marks=pytest.mark.torch),
])  # fmt: skip
def test_multiclass_string_labels_predict_labels_and_probabilities(splits, trainer, params) -> None:  # type: ignore[no-untyped-def]
    train, valid = splits
    model = fit("multiclass", trainer, params, "label", train, valid)
    out = model.predict(None, valid.drop(columns=["label", "amount", "churn", "id"]))
    assert list(out.columns) == ["prediction", "probability_high", "probability_low", "probability_mid"]
    assert set(out["prediction"]) <= {"high", "low", "mid"}
    assert np.allclose(out.filter(like="probability_").sum(axis=1), 1.0, atol=1e-5)
    accuracy = float((out["prediction"] == valid["label"]).mean())
    assert accuracy > 0.75, accuracy  # the majority class alone is right about 0.4 of the time


@pytest.mark.parametrize("trainer,params", [
    ("sklearn", {"estimator": "sklearn.ensemble.RandomForestRegressor", "n_estimators": 40}),
    pytest.param("torch_mlp", {"epochs": 30, "hidden": [32], "lr": 0.01}, marks=pytest.mark.torch),
    pytest.param("torch_mlp", {"epochs": 30, "hidden": [32], "lr": 0.01, "loss": "huber"}, marks=pytest.mark.torch),
])  # fmt: skip
def test_regression_predicts_in_the_targets_units(splits, trainer, params) -> None:  # type: ignore[no-untyped-def]
    train, valid = splits
    model = fit("regression", trainer, params, "amount", train, valid)
    out = model.predict(None, valid)
    assert list(out.columns) == ["prediction"]
    metrics = compute_metrics(valid["amount"].to_numpy(), Predictions("regression", out["prediction"].to_numpy()),
                              ["rmse", "r2", "mae", "mape"])  # fmt: skip
    trivial = compute_metrics(valid["amount"].to_numpy(),
                              baseline_predictions("regression", train["amount"].to_numpy(), len(valid), 0, 0.5),
                              ["rmse", "r2"])  # fmt: skip
    assert metrics["r2"] > 0.8 and metrics["rmse"] < trivial["rmse"] / 2, (metrics, trivial)


def test_binary_string_labels_with_a_tuned_threshold(splits) -> None:  # type: ignore[no-untyped-def]
    train, valid = splits
    model = fit("binary", "sklearn", {"max_iter": 50}, "churn", train, valid, positive="yes")
    positive = model.scores(valid)
    y = Labels.infer("binary", train["churn"], "yes").encode(valid["churn"])
    threshold = tune_threshold("f1", y, positive)
    assert 0.0 < threshold < 1.0
    tuned = compute_metrics(y, Predictions("binary", positive, threshold), ["f1"])["f1"]
    fixed = compute_metrics(y, Predictions("binary", positive, 0.5), ["f1"])["f1"]
    assert tuned >= fixed
    model.meta["threshold"] = threshold
    out = model.predict(None, valid)
    assert list(out.columns) == ["prediction", "probability_no", "probability_yes"]
    assert ((out["probability_yes"] >= threshold) == (out["prediction"] == "yes")).all()


def test_a_model_that_does_not_beat_the_trivial_baseline_is_not_blessed() -> None:
    y = np.array([0] * 80 + [1] * 20)
    constant = Predictions("binary", np.full(100, 0.1))
    trivial = baseline_predictions("binary", y, 100, 2, 0.5)
    names = ["accuracy", "roc_auc"]
    verdict = judge(compute_metrics(y, constant, names), None, {}, {},
                    baseline=compute_metrics(y, trivial, names), key_metric="accuracy")  # fmt: skip
    assert not verdict.blessed and "trivial baseline" in verdict.reasons[0]
    good = Predictions("binary", np.where(y == 1, 0.9, 0.1))
    verdict = judge(compute_metrics(y, good, names), None, {}, {}, baseline=compute_metrics(y, trivial, names),
                    key_metric="accuracy")  # fmt: skip
    assert verdict.blessed, verdict.reasons


def test_a_metric_that_cannot_be_computed_never_blesses() -> None:
    """One class in the test split: roc_auc is NaN, which compares false both ways; it blessed the model (N11)."""
    y = np.zeros(50, dtype=int)  # only class 0 in the test split
    names = ["accuracy", "roc_auc"]
    challenger = compute_metrics(y, Predictions("binary", np.full(50, 0.2)), names)
    assert challenger["roc_auc"] != challenger["roc_auc"]  # NaN
    trivial = compute_metrics(y, baseline_predictions("binary", np.array([0, 1] * 10), 50, 2, 0.5), names)
    verdict = judge(challenger, None, {}, {}, baseline=trivial, key_metric="roc_auc")
    assert not verdict.blessed and "roc_auc: not computed" in verdict.reasons[0], verdict.reasons
    # against a champion: a NaN on either side is no evidence of "no regression"
    champion = {"accuracy": 0.9, "roc_auc": 0.8}
    verdict = judge(challenger, champion, {}, {"roc_auc": 0.01})
    assert not verdict.blessed and "the challenger's value was not computed" in verdict.reasons[0], verdict.reasons
    verdict = judge(champion, challenger, {}, {"roc_auc": 0.01})
    assert not verdict.blessed and "the champion's value was not computed" in verdict.reasons[0], verdict.reasons
    assert judge(champion, {"accuracy": 0.9, "roc_auc": 0.79}, {}, {"roc_auc": 0.01}).blessed


def test_every_metric_of_every_task_computes() -> None:
    from mlops_ops.training.tasks import METRICS

    rng = np.random.default_rng(0)
    y2 = rng.integers(0, 2, 200)
    p2 = np.clip(y2 * 0.6 + rng.random(200) * 0.4, 0, 1)
    y3 = rng.integers(0, 3, 200)
    p3 = rng.dirichlet([1, 1, 1], 200)
    yr = rng.normal(10, 2, 200)
    for task, y, scores in (("binary", y2, p2), ("multiclass", y3, p3), ("regression", yr, yr + rng.normal(0, 1, 200))):
        out = compute_metrics(y, Predictions(task, scores), list(METRICS[task]))
        assert all(np.isfinite(v) for v in out.values()), (task, out)
    with pytest.raises(ValueError, match="does not apply"):
        compute_metrics(y2, Predictions("binary", p2), ["rmse"])


def test_unsupported_trainer_task_and_estimator_kind_are_refused(splits) -> None:  # type: ignore[no-untyped-def]
    from mlops_ops.training.trainers import estimator_class

    with pytest.raises(ValueError, match="not a regressor"):
        estimator_class("sklearn.linear_model.LogisticRegression", "regression")
    with pytest.raises(ValueError, match="cannot be imported"):
        estimator_class("sklearn.ensemble.NoSuchForest", "binary")
    with pytest.raises(ValueError, match="supports task"):
        resolve("tests.unit.training.test_models:binary_only_trainer", "regression")


def binary_only_trainer(data: TrainingData, *, params: dict[str, Any], log_metric: Any) -> Any:
    raise AssertionError("never called")


binary_only_trainer.tasks = ("binary",)  # type: ignore[attr-defined]


def test_an_estimator_outside_scikit_learn_is_refused_before_any_import() -> None:
    """A run's ``train_params.estimator`` is not a spec: the allow-list of spec callables never saw it (N9). The
    trigger's Param schema refuses it, and the training runtime refuses it again without importing it."""
    import sys

    from mlops_ops.exceptions import TrainingInputError
    from mlops_ops.training.params_schema import problems, schema_for
    from mlops_ops.training.trainers import estimator_class, sklearn_trainer

    schema = schema_for("sklearn")
    assert problems({"estimator": "sklearn.linear_model.LogisticRegression", "C": 0.5}, schema) == []
    for path in ("antigravity.Fly", "os.system", "sklearn_evil.linear_model.Ridge", "sklearn.linear_model"):
        assert any(p.startswith("estimator:") for p in problems({"estimator": path}, schema)), path
        with pytest.raises(TrainingInputError, match="is refused: it must be a scikit-learn estimator class"):
            estimator_class(path, "binary")
    assert "antigravity" not in sys.modules  # importing it would open a web browser: nothing was imported
    data = TrainingData("binary", np.zeros((2, 1), "float32"), np.array([0, 1]), None, None, ["no", "yes"])
    with pytest.raises(TrainingInputError, match=r"'antigravity\.Fly' is refused"):
        sklearn_trainer(data, params={"estimator": "antigravity.Fly"}, log_metric=lambda *a: None)
