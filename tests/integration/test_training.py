"""Training through TrainModelOperator (subprocess executor) against the stack's real MLflow server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration.churn_data import churn_feature_table
from tests.integration.lake_helpers import new_tables

DAG_FILE = """
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param

from mlops_ops.operators.train import TrainModelOperator

with DAG("train_{name}", schedule=None, start_date=datetime(2026, 1, 1),
         params={{"train_params": Param({{}}, type="object")}}):
    TrainModelOperator(task_id="train", retries={retries}, retry_delay=timedelta(0),
                       training=dict(pipeline="churn", model_name="{name}", target="{target}", task="binary",
                       trainer="{trainer}", trainer_params={params}, features="{manifest}"))
"""


@pytest.fixture(scope="module")
def features_manifest(stack) -> str:  # type: ignore[no-untyped-def]
    """A pinned feature-table snapshot reference (``<pipeline>.features@<id>``)."""
    return churn_feature_table(stack, new_tables("t"))


def _run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trainer: str,
    manifest: str,
    params: dict[str, Any],
    conf: dict[str, Any] | None = None,
    *,
    target: str = "churned",
    retries: int = 0,
) -> tuple[str, Any, Any]:
    import airflow.settings
    from airflow.dag_processing.dagbag import DagBag

    name = f"m{uuid.uuid4().hex[:8]}"
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    (dags / f"{name}.py").write_text(DAG_FILE.format(name=name, trainer=trainer, params=params, manifest=manifest,
                                                     target=target, retries=retries))  # fmt: skip
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(dags))
    run = DagBag(dag_folder=str(dags / f"{name}.py")).dags[f"train_{name}"].test(run_conf=conf)
    (ti,) = run.get_task_instances()
    return name, run, ti


def test_sklearn_model_is_logged_registered_and_servable(stack, features_manifest, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mlflow
    import pandas as pd

    name, run, ti = _run(tmp_path, monkeypatch, "sklearn", features_manifest, {"max_iter": 30})
    assert ti.state == "success"
    result = ti.xcom_pull(task_ids="train")
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(name, "challenger")
    assert version.version == result["version"] == "1" and version.run_id == result["run_id"]
    logged = client.get_run(result["run_id"])
    assert logged.data.params["hp.max_iter"] == "30" and logged.data.params["trainer"] == "sklearn"
    assert logged.data.tags["mlops_ops.pipeline"] == "churn"
    assert logged.data.tags["airflow.run_id"] == run.run_id
    assert logged.data.tags["mlops_ops.features_snapshot"] == features_manifest
    assert version.tags["mlops_ops.features_snapshot"] == features_manifest and version.tags["mlops_ops.raw_snapshot"]
    assert version.tags["mlops_ops.run_id"] == result["run_id"]
    model = mlflow.pyfunc.load_model(f"models:/{name}@challenger")
    rows = pd.DataFrame(
        {
            "tenure_months": [2.0, 70.0],
            "monthly_charges": [95.0, 20.0],
            "charges_per_month": [95.0, 20.0],
            "support_calls": [7, None],
        }
    )  # fmt: skip  (a missing value is imputed inside the model)
    out = model.predict(rows)
    assert list(out.columns) == ["prediction", "probability_False", "probability_True"] and len(out) == 2


def test_a_target_the_features_lack_fails_once_without_retries(stack, features_manifest, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No retry can add a column: the task fails on its first try although it has retries left (N20)."""
    import mlflow

    name, _, ti = _run(tmp_path, monkeypatch, "sklearn", features_manifest, {}, target="churn_flag", retries=2)
    assert ti.state == "failed" and ti.try_number == 1, (ti.state, ti.try_number)
    assert mlflow.MlflowClient().search_model_versions(f"name = '{name}'") == []  # nothing registered


def test_torch_trainer_takes_trigger_time_params(stack, features_manifest, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    name, _, ti = _run(tmp_path, monkeypatch, "torch_mlp", features_manifest, {"epochs": 5, "hidden": [16]},
                       conf={"train_params": {"epochs": 2}})  # fmt: skip
    assert ti.state == "success"
    result = ti.xcom_pull(task_ids="train")
    client = mlflow.MlflowClient()
    logged = client.get_run(result["run_id"])
    assert logged.data.params["hp.epochs"] == "2" and logged.data.params["hp.hidden"] == "[16]"
    assert [m.step for m in client.get_metric_history(result["run_id"], "train_loss")] == [0, 1]
    assert len(client.get_metric_history(result["run_id"], "val_loss")) == 2
    assert client.get_model_version_by_alias(name, "challenger").version == "1"


def test_killed_trainer_fails_the_task_and_registers_nothing(stack, features_manifest, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    name, run, ti = _run(tmp_path, monkeypatch, "tests.integration.feature_transforms:crash_after_first_epoch",
                         features_manifest, {})  # fmt: skip
    assert ti.state == "failed"
    client = mlflow.MlflowClient()
    assert client.search_model_versions(f"name = '{name}'") == []
    experiment = client.get_experiment_by_name(name)
    (dead,) = client.search_runs([experiment.experiment_id])
    assert dead.info.status == "FAILED" and dead.data.tags["airflow.run_id"] == run.run_id
