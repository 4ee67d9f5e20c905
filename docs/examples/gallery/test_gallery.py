"""The gallery, run end to end with the mlops-ops pytest plugin (``mlops_runner``): three problems that are not the
churn example, each from raw data to a champion a plain MLflow consumer predicts with, then a drift check.

Each test: first data → ingest → quality gate → features → train → evaluate (against the trivial baseline) →
promote; a consumer loads ``models:/<name>@champion`` with ``mlflow.pyfunc`` and predicts on raw columns; shifted
data arrives → ingest → the drift DAG sees it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from gallery_lib import data

PIPELINES = Path(__file__).parent / "pipelines"
TRAINING = {"preprocess": "success", "train": "success", "evaluate": "success", "promote": "success"}


def champion_model(run: Any) -> Any:
    import mlflow

    return mlflow.pyfunc.load_model(f"models:/{run.spec.promote.model_name}@champion")


def drift_after(runner: Any, first: Any, **new_data: Any) -> dict[str, Any]:
    """Shifted data goes through the ingest DAG, then the drift DAG runs; its check's summary."""
    ingest = runner.run(first.spec, isolate=False, dag="ingest", **new_data)
    assert ingest.state == "success", ingest.tasks
    drift = runner.run(first.spec, isolate=False, dag="drift")
    assert drift.tasks["drift_check"] == "success", drift.tasks
    summary: dict[str, Any] = drift.xcom("drift_check")
    return summary


def test_house_prices_regression_from_s3_parquet_with_an_sklearn_estimator(mlops_runner) -> None:
    files = {f"part-{i}.parquet": data.parquet_bytes(data.houses(1_500, seed=i)) for i in range(3)}
    run = mlops_runner.run(PIPELINES / "house_prices.yaml", files=files)

    assert run.state == "success", run.tasks
    assert {k: run.tasks[k] for k in TRAINING} == TRAINING
    verdict = run.xcom("evaluate")
    assert verdict["blessed"] and verdict["metrics"]["r2"] > 0.7, verdict
    assert 0.0 < verdict["metrics"]["within_10pct"] <= 1.0  # the custom metric
    assert run.champion() == "1"

    model = champion_model(run)
    listing = pd.DataFrame({"sqft": [900.0, 3200.0], "bedrooms": [1.0, 4.0], "neighborhood": ["eastgate", "hillcrest"],
                            "has_garage": [False, True], "age_years": [60.0, 2.0]})  # fmt: skip
    prices = model.predict(listing)
    assert list(prices.columns) == ["prediction"]
    assert 100_000 < prices["prediction"][0] < prices["prediction"][1] < 1_000_000, prices

    shifted = {"shifted.parquet": data.parquet_bytes(data.houses(1_500, seed=9, shifted=True))}
    summary = drift_after(mlops_runner, run, files=shifted)
    assert summary["drifted"] and "sqft" in summary["drifted_columns"], summary
    assert summary["prediction_drift"] is not None  # a regression model's predictions are compared too


def test_a_trainer_of_your_own_replaces_the_estimator(mlops_runner) -> None:
    """The house-price pipeline with ``gallery_lib.trainers:ridge_trainer``: imported by the training subprocess
    from this project without PYTHONPATH; its model is saved and served like the built-ins'."""
    spec = mlops_runner.load(PIPELINES / "house_prices.yaml")
    train = spec.train.model_copy(update={"trainer": "gallery_lib.trainers:ridge_trainer", "estimator": None,
                                          "params": {"alpha": 2.0}})  # fmt: skip
    files = {"part.parquet": data.parquet_bytes(data.houses(3_000, seed=5))}
    run = mlops_runner.run(spec.model_copy(update={"train": train}), isolate=False, files=files)

    assert run.state == "success", run.tasks
    verdict = run.xcom("evaluate")
    assert verdict["blessed"] and verdict["metrics"]["r2"] > 0.7, verdict
    import mlflow

    version = mlflow.MlflowClient().get_model_version_by_alias(spec.promote.model_name, "champion")
    logged = mlflow.MlflowClient().get_run(version.run_id).data
    assert logged.params["trainer"] == "gallery_lib.trainers:ridge_trainer" and logged.metrics["valid_r2"] > 0.7


def test_support_tickets_multiclass_string_labels_from_kafka_with_torch(mlops_runner) -> None:
    run = mlops_runner.run(PIPELINES / "support_tickets.yaml", events=data.tickets(4_000, seed=1))

    assert run.state == "success", run.tasks
    assert {k: run.tasks[k] for k in TRAINING} == TRAINING
    verdict = run.xcom("evaluate")
    assert verdict["blessed"] and verdict["metrics"]["f1_macro"] > 0.7, verdict
    assert run.champion() == "1"

    model = champion_model(run)
    ticket = pd.DataFrame({"channel": ["email", "chat"], "plan": ["pro", "free"], "log_words": [3.0, 4.0],
                           "has_attachment": [False, True], "mentions_invoice": [True, False],
                           "mentions_password": [False, False], "error_codes": [0.0, 5.0],
                           "account_age_days": [120.0, 30.0]})  # fmt: skip
    routed = model.predict(ticket)
    assert list(routed.columns) == ["prediction", "probability_account", "probability_billing", "probability_technical"]
    assert list(routed["prediction"]) == ["billing", "technical"], routed

    summary = drift_after(mlops_runner, run, events=data.tickets(3_000, seed=2, shifted=True))
    assert summary["drifted"], summary
    assert summary["prediction_drift"]["drifted"], summary  # the predicted queue moved to "account"


def test_loan_default_binary_string_labels_with_a_tuned_threshold(mlops_runner) -> None:
    files = {"applications.csv": data.csv_bytes(data.loans(5_000, seed=1))}
    run = mlops_runner.run(PIPELINES / "loan_default.yaml", files=files)

    assert run.state == "success", run.tasks
    assert {k: run.tasks[k] for k in TRAINING} == TRAINING
    verdict = run.xcom("evaluate")
    assert verdict["blessed"] and verdict["metrics"]["pr_auc"] > 0.35, verdict
    assert run.champion() == "1"

    import mlflow

    version = mlflow.MlflowClient().get_model_version_by_alias(run.spec.promote.model_name, "champion")
    threshold = mlflow.MlflowClient().get_run(version.run_id).data.metrics["decision_threshold"]
    assert 0.0 < threshold < 0.5  # tuned for F1 on a rare positive class: below the default 0.5

    model = champion_model(run)
    applicants = pd.DataFrame({"income": [20_000.0, 90_000.0], "amount": [35_000.0, 3_000.0],
                               "loan_to_income": [1.75, 0.033], "credit_score": [520.0, 780.0],
                               "late_payments": [3.0, 0.0], "purpose": ["business", "home"],
                               "employed": [False, True]})  # fmt: skip
    scored = model.predict(applicants)
    assert list(scored.columns) == ["prediction", "probability_repaid", "probability_default"]
    assert list(scored["prediction"]) == ["default", "repaid"], scored
    assert ((scored["probability_default"] >= threshold) == (scored["prediction"] == "default")).all()

    summary = drift_after(mlops_runner, run, files={"later.csv": data.csv_bytes(data.loans(3_000, seed=2,
                                                                                           shifted=True))})  # fmt: skip
    assert summary["drifted"] and "income" in summary["drifted_columns"], summary


@pytest.mark.parametrize("spec", sorted(PIPELINES.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_gallery_spec_validates(spec: Path) -> None:
    from mlops_ops.spec_loader import load_spec

    assert load_spec(spec).train is not None
