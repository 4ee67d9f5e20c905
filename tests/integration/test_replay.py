"""``mlops-ops replay MODEL@VERSION`` against the real stack (Iceberg on S3, MLflow): versions trained by the
entrypoint are trained again from what they recorded, after new data has changed the feature table; the replay
registers a new version without moving an alias and compares metrics: identical for sklearn, within the stated
tolerance for torch on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

from tests.conftest import ROOT
from tests.integration.churn_data import churn_feature_table, clean_rows, land_batch, to_csv
from tests.integration.lake_helpers import pipeline_tables

TORCH_TOLERANCE = 1e-6  # what docs/replay.md states for torch_mlp on the CPU


def _train(features: str, name: str, trainer: str, params: dict[str, Any]) -> dict[str, Any]:
    from mlops_ops.training.run import build_parser, train_and_register

    model = '{"task": "binary", "target": "churned"}'
    args = build_parser().parse_args(["--features", features, "--model", model, "--trainer", trainer,
                                      "--params", json.dumps(params), "--model-name", name])  # fmt: skip
    return train_and_register(args)


def _replay(stack: Any, ref: str, *extra: str) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, **stack.environment(), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mlops_ops.cli.main", "replay", ref, "--json", *extra],
                          capture_output=True, text=True, env=env, timeout=600, check=False)  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-3000:]
    return done.returncode, json.loads(done.stdout)


def test_replays_train_again_from_the_recorded_snapshot(stack) -> None:  # type: ignore[no-untyped-def]
    import mlflow

    from mlops_ops.hooks.spark import SparkHook
    from mlops_ops.lake.features import FeatureBuild, build_features

    tables = pipeline_tables(f"replay_{uuid.uuid4().hex[:6]}")
    features = churn_feature_table(stack, tables, rows=2_000)
    name = f"replay-{uuid.uuid4().hex[:6]}"
    client = mlflow.MlflowClient()
    sk = _train(features, name, "sklearn", {"max_iter": 40})
    torch = _train(features, name, "torch_mlp", {"epochs": 3, "hidden": [16]})
    client.set_registered_model_alias(name, "champion", sk["version"])

    # new data arrives and the feature table moves on: replays still read the snapshot each version recorded
    land_batch(stack, tables, to_csv(clean_rows(1_000, seed=99, start=900_000)))
    build = FeatureBuild("customer_id", transform="tests.integration.feature_transforms:churn_features")
    moved = build_features(SparkHook(app_name="mlops-ops-tests").get_conn(), tables, build).ref
    assert moved != features

    code, result = _replay(stack, f"{name}@{sk['version']}")
    assert code == 0 and result["within_tolerance"] and result["features"] == features, result
    metrics = result["metrics"]
    assert {"test_roc_auc", "test_accuracy", "test_log_loss", "decision_threshold"} <= set(metrics)
    assert all(m["difference"] == 0 for m in metrics.values()), metrics  # deterministic: identical
    replayed = client.get_model_version(name, result["version"])
    assert replayed.tags["mlops_ops.replay_of"] == f"{name}@{sk['version']}"
    assert replayed.tags["mlops_ops.features_snapshot"] == features
    aliases = {a: client.get_model_version_by_alias(name, a).version for a in ("champion", "challenger")}
    assert aliases == {"champion": sk["version"], "challenger": torch["version"]}  # no alias moved

    code, result = _replay(stack, f"{name}@{torch['version']}", "--tolerance", str(TORCH_TOLERANCE))
    assert code == 0 and result["within_tolerance"], result
    assert {"test_roc_auc", "val_loss", "train_loss"} <= set(result["metrics"])
    assert client.get_model_version_by_alias(name, "champion").version == sk["version"]

    # a tolerance the comparison cannot meet is reported (exit 1): the check can fail
    code, result = _replay(stack, f"{name}@{sk['version']}", "--tolerance", "-1")
    assert code == 1 and not result["within_tolerance"]

    # the recorded request is outside input: anyone with MLflow's credentials can rewrite it (N16); a request no spec
    # or run conf could make is refused before anything is imported or trained, and no version is registered
    from mlops_ops.training.run import REQUEST_ARTIFACT

    run_id = client.get_model_version(name, sk["version"]).run_id
    versions = {v.version for v in client.search_model_versions(f"name='{name}'")}
    recorded = {"features": features, "model": {"task": "binary", "target": "churned"}, "trainer": "sklearn",
                "params": {"max_iter": 40}}  # fmt: skip
    refusals = [({"trainer": "payload_nobody_listed:train"}, "is not trusted for spec callables"),
                ({"params": {"estimator": "antigravity.Fly"}}, "params do not fit trainer 'sklearn'")]  # fmt: skip
    for tampered, why in refusals:
        client.log_dict(run_id, {**recorded, **tampered}, REQUEST_ARTIFACT)
        env = {**os.environ, **stack.environment(), "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-m", "mlops_ops.cli.main", "replay", f"{name}@{sk['version']}"],
                              capture_output=True, text=True, env=env, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 2 and "the recorded request is refused" in done.stderr and why in done.stderr, (
            done.stderr[-2000:])  # fmt: skip
    assert {v.version for v in client.search_model_versions(f"name='{name}'")} == versions
