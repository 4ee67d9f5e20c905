"""Train → evaluate → promote against the stack's MLflow: blessing, the champion staying, rollback, concurrency."""

from __future__ import annotations

import threading
import uuid

import pytest

from mlops_ops.lake.features import FeatureBuild, build_features
from mlops_ops.training.registry import PREVIOUS, NotBlessedError, alias_version, promote
from tests.integration.churn_data import clean_rows, land_batch, to_csv
from tests.integration.lake_helpers import new_tables

DAG_FILE = """
from datetime import datetime

from airflow.sdk import DAG, Asset, Param

from mlops_ops.operators.evaluate import EvaluateModelOperator, PromoteModelOperator
from mlops_ops.operators.train import TrainModelOperator

with DAG("{dag_id}", schedule=None, start_date=datetime(2026, 1, 1),
         params={{"train_params": Param({{}}, type="object")}}):
    train = TrainModelOperator(task_id="train", retries=0, training=dict(pipeline="churn", model_name="{name}",
                               target="churned", task="binary", trainer="sklearn",
                               trainer_params={{"max_iter": 60}}, features="{manifest}"))
    evaluate = EvaluateModelOperator(task_id="evaluate", model_name="{name}", target="churned",
                                     task="binary", metrics=["accuracy", "roc_auc", "log_loss", "f1"],
                                     thresholds={{"roc_auc": {{"min": 0.6}}}},
                                     max_regression={{"accuracy": 0.01, "log_loss": 0.02}},
                                     slice_column="support_calls", retries=0)
    promote = PromoteModelOperator(task_id="promote", model_name="{name}", retries=0,
                                   outlets=[Asset(name="mlops_ops.churn.model", group="mlops-ops")])
    train >> evaluate >> promote
"""


@pytest.fixture(scope="module")
def features_manifest(stack) -> str:  # type: ignore[no-untyped-def]
    from mlops_ops.hooks.spark import SparkHook

    tables = new_tables("promo")
    land_batch(stack, tables, to_csv(clean_rows(6_000, seed=11)))
    spark = SparkHook(app_name="mlops-ops-tests").get_conn()
    build = FeatureBuild("customer_id", transform="tests.integration.feature_transforms:churn_features")
    return build_features(spark, tables, build).ref


def _pipeline(tmp_path, monkeypatch, name: str, manifest: str, conf: dict | None = None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    import airflow.settings
    from airflow.dag_processing.dagbag import DagBag

    dag_id = f"promo_{uuid.uuid4().hex[:6]}"
    dags = tmp_path / "dags"
    dags.mkdir(exist_ok=True)
    path = dags / f"{dag_id}.py"
    path.write_text(DAG_FILE.format(dag_id=dag_id, name=name, manifest=manifest))
    monkeypatch.setattr(airflow.settings, "DAGS_FOLDER", str(dags))
    run = DagBag(dag_folder=str(path)).dags[dag_id].test(run_conf=conf)
    return {t.task_id: t for t in run.get_task_instances()}


def test_train_evaluate_promote_then_a_worse_model_is_refused_and_rollback(  # type: ignore[no-untyped-def]
    stack, features_manifest, tmp_path, monkeypatch
) -> None:
    import json

    import mlflow
    import pandas as pd

    client = mlflow.MlflowClient()
    name = f"churn-{uuid.uuid4().hex[:6]}"
    first = _pipeline(tmp_path, monkeypatch, name, features_manifest)
    assert {k: t.state for k, t in first.items()} == {"train": "success", "evaluate": "success", "promote": "success"}
    verdict = first["evaluate"].xcom_pull(task_ids="evaluate")
    assert verdict["blessed"] and verdict["champion_version"] is None and verdict["metrics"]["roc_auc"] > 0.6
    assert alias_version(client, name, "champion") == "1" and alias_version(client, name, PREVIOUS) is None
    version = client.get_model_version(name, "1")
    assert version.tags["mlops_ops.blessed"] == "true" and "/promote" in version.tags["mlops_ops.promoted_by"]
    report = json.loads(open(client.download_artifacts(version.run_id, "evaluation/report.json")).read())
    assert set(report["slices"]) == {str(i) for i in range(10)} and report["verdict"]["blessed"]
    assert client.download_artifacts(version.run_id, "evaluation/report.html").endswith("report.html")

    # a consumer loads the champion and predicts on raw feature rows: labels and per-class probabilities
    model = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    rows = pd.DataFrame(
        {
            "tenure_months": [1.0, 72.0],
            "monthly_charges": [90.0, 20.0],
            "charges_per_month": [90.0, 20.0],
            "support_calls": [9.0, 0.0],
        }
    )  # fmt: skip (numbers are double in the signature)
    out = model.predict(rows)
    assert list(out.columns) == ["prediction", "probability_False", "probability_True"]  # churned is a bool
    assert list(out["prediction"]) == [True, False]
    assert out["probability_True"].iloc[0] > 0.5 > out["probability_True"].iloc[1]
    assert report["baseline"]["metrics"]["accuracy"] < report["challenger"]["metrics"]["accuracy"]
    assert {"confusion_matrix.png", "slices.png"} <= {
        a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(version.run_id, "evaluation")
    }

    # deliberately worse: one tiny boosting step predicts "no churn" for everyone
    worse = _pipeline(tmp_path, monkeypatch, name, features_manifest,
                      conf={"train_params": {"max_iter": 1, "learning_rate": 0.0001}})  # fmt: skip
    assert {k: t.state for k, t in worse.items()} == {"train": "success", "evaluate": "success", "promote": "skipped"}
    refused = worse["evaluate"].xcom_pull(task_ids="evaluate")
    assert not refused["blessed"] and refused["champion_version"] == "1"
    assert any(r.startswith("accuracy regressed") for r in refused["reasons"])
    assert alias_version(client, name, "champion") == "1"
    assert client.get_model_version(name, "2").tags["mlops_ops.blessed"] == "false"
    with pytest.raises(NotBlessedError, match="regressed"):
        promote(client, name, "2", by="someone")

    # a third, good model replaces the champion; rollback restores version 1
    third = _pipeline(tmp_path, monkeypatch, name, features_manifest, conf={"train_params": {"max_iter": 80}})
    assert third["promote"].state == "success"
    assert alias_version(client, name, "champion") == "3" and alias_version(client, name, PREVIOUS) == "1"
    again = promote(client, name, "3", by="retry")  # a retry of the same promotion changes nothing
    assert again == {"model_name": name, "champion": "3", "previous": "1", "changed": False}
    from mlops_ops.cli.main import main as cli

    assert cli(["model", "rollback", "--name", name, "--by", "dana", "--reason", "complaints from support"]) == 0
    assert alias_version(client, name, "champion") == "1" and alias_version(client, name, PREVIOUS) == "3"
    assert "dana: complaints from support" in client.get_model_version(name, "3").tags["mlops_ops.rolled_back"]
    # the same rollback again must not put the bad model back: refused, names the way out
    assert cli(["model", "rollback", "--name", name, "--by", "dana", "--reason", "again"]) == 1
    assert alias_version(client, name, "champion") == "1"
    # a rollback naming its target is idempotent
    assert cli(["model", "rollback", "--name", name, "--to", "1", "--by", "dana", "--reason", "again"]) == 0
    assert alias_version(client, name, "champion") == "1" and alias_version(client, name, PREVIOUS) == "3"


def test_concurrent_promotions_keep_the_aliases_consistent(stack) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    client = mlflow.MlflowClient()
    name = f"race-{uuid.uuid4().hex[:6]}"
    client.create_registered_model(name)
    with mlflow.start_run() as run:
        mlflow.log_text("x", "model/placeholder.txt")
    versions = []
    for _ in range(5):
        v = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
        client.set_model_version_tag(name, v.version, "mlops_ops.blessed", "true")
        versions.append(str(v.version))
    errors: list[Exception] = []

    def go(version: str) -> None:
        try:
            promote(client, name, version, by=f"t{version}")
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=go, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    order = sorted(versions, key=lambda v: client.get_model_version(name, v).tags["mlops_ops.promoted_at"])
    assert alias_version(client, name, "champion") == order[-1]
    assert alias_version(client, name, PREVIOUS) == order[-2], "previous must be the champion it replaced"
    assert client.search_registered_models(f"name = '{name}.promotion-lock'") == []


def _blessed_versions(client, name: str, n: int) -> list[str]:  # type: ignore[no-untyped-def]
    import mlflow

    client.create_registered_model(name)
    with mlflow.start_run() as run:
        mlflow.log_text("x", "model/placeholder.txt")
    out = []
    for _ in range(n):
        v = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
        client.set_model_version_tag(name, v.version, "mlops_ops.blessed", "true")
        out.append(str(v.version))
    return out


def test_a_crash_between_the_two_alias_updates_retries_into_the_right_aliases(stack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    client = mlflow.MlflowClient()
    name = f"crash-{uuid.uuid4().hex[:6]}"
    v1, v2 = _blessed_versions(client, name, 2)
    promote(client, name, v1, by="first")
    real = client.set_registered_model_alias
    calls = {"n": 0}

    def dies_after_the_first_update(model: str, alias: str, version: str) -> None:
        calls["n"] += 1
        real(model, alias, version)
        if calls["n"] == 1:
            raise SystemExit("killed between the two alias updates")

    monkeypatch.setattr(client, "set_registered_model_alias", dies_after_the_first_update)
    with pytest.raises(SystemExit):
        promote(client, name, v2, by="second")
    monkeypatch.setattr(client, "set_registered_model_alias", real)
    # consumers still see the old champion
    assert alias_version(client, name, "champion") == v1
    result = promote(client, name, v2, by="retry")  # the retry
    assert result["changed"] and alias_version(client, name, "champion") == v2
    assert alias_version(client, name, PREVIOUS) == v1, "previous must be the champion it replaced"


def test_a_dead_holders_lock_is_taken_over_and_a_live_one_is_never_deleted(stack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    import mlflow

    from mlops_ops.training import registry

    client = mlflow.MlflowClient()
    name = f"lock-{uuid.uuid4().hex[:6]}"
    (v1,) = _blessed_versions(client, name, 1)
    lock = name + registry.LOCK_SUFFIX
    client.create_registered_model(lock, tags={"owner": "dead", "token": "t-dead", "since": str(time.time() - 3600)})
    promote(client, name, v1, by="alive")  # takes the stale lock over
    assert alias_version(client, name, "champion") == v1
    assert client.search_registered_models(f"name = '{lock}'") == []
    # a live holder's lock: a release with another token leaves it alone
    client.create_registered_model(lock, tags={"owner": "live", "token": "t-live", "since": str(time.time())})
    registry._delete_if_token(client, lock, "t-someone-else")
    assert client.get_registered_model(lock).tags["token"] == "t-live"
    with pytest.raises(TimeoutError, match="held by live"):
        with registry.registry_lock(client, name, "waiter", timeout_s=1):
            pass
    registry._delete_if_token(client, lock, "t-live")
