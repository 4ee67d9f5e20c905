"""The training entrypoint every executor runs: ``python -m mlops_ops.training ...``.

Reads a pinned feature-table snapshot (``<pipeline>.features@<id>``), trains on ``train`` (``validation`` for per-epoch
validation loss), logs params, metrics, the model (native flavor, signature, input
example) and lineage tags to MLflow, then registers a model version with alias
``challenger``. Registration is the last step, so a run killed before it registers nothing.
The result (run id, version, model URI) is printed as the last line of stdout and, with
``--result-file``, written there.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mlops_ops import __version__
from mlops_ops._extras import require
from mlops_ops.training.evaluation import CHALLENGER

RESULT_PREFIX = "MLOPS_OPS_RESULT "
FEATURES_TAG = "mlops_ops.features_snapshot"  # the exact data a version learned from (drift's reference)
RAW_SNAPSHOT_TAG = "mlops_ops.raw_snapshot"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlops_ops.training", description=__doc__)
    parser.add_argument("--features", required=True, help="feature-table snapshot: <pipeline>.features@<snapshot id>")
    parser.add_argument("--target", required=True)
    parser.add_argument("--task", required=True, choices=["classification", "regression"])
    parser.add_argument("--trainer", default="sklearn", help="sklearn, torch_mlp or module.path:function")
    parser.add_argument("--params", default="{}", help="JSON object of hyper-parameters")
    parser.add_argument("--model-name", required=True, help="registered model name")
    parser.add_argument("--experiment", default=None, help="MLflow experiment (default: the model name)")
    parser.add_argument("--tags", default="{}", help="JSON object of lineage tags for the run and the version")
    parser.add_argument("--result-file", type=Path, default=None)
    return parser


def train_and_register(args: argparse.Namespace) -> dict[str, Any]:
    mlflow = require("mlflow", "mlflow")
    from mlflow.models import infer_signature

    from mlops_ops.training.data import load_split, open_features
    from mlops_ops.training.trainers import resolve

    params = json.loads(args.params)
    tags = {str(k): str(v) for k, v in json.loads(args.tags).items()}
    features = open_features(args.features)
    train = load_split(features, "train", args.target)
    columns = list(train.features.columns)
    validation = (
        load_split(features, "validation", args.target, feature_columns=columns)
        if features.split_rows("validation")
        else None
    )
    trainer = resolve(args.trainer)
    mlflow.set_experiment(args.experiment or args.model_name)
    lineage = {**tags, "mlops_ops.version": __version__, FEATURES_TAG: args.features,
               RAW_SNAPSHOT_TAG: features.raw_snapshot or "", "mlops_ops.trainer": args.trainer}  # fmt: skip
    with mlflow.start_run(tags=lineage) as run:
        mlflow.log_params({"trainer": args.trainer, "task": args.task, "target": args.target,
                           "n_features": len(columns), "train_rows": len(train.target),
                           **{f"hp.{k}": v for k, v in params.items()}})  # fmt: skip
        trained = trainer(train, validation, task=args.task, params=dict(params),
                          log_metric=lambda name, value, step: mlflow.log_metric(name, value, step=step))  # fmt: skip
        example = (validation or train).features.head(5)
        signature = infer_signature(example, trained.predict(example))
        flavor = getattr(mlflow, trained.flavor)
        extra: dict[str, Any] = {"skops_trusted_types": trained.trusted_types} if trained.trusted_types else {}
        if trained.flavor == "pytorch":
            # "pt2" traces a fixed-shape graph from the example; pickle keeps DataFrame rows of any batch size
            extra["serialization_format"] = "pickle"
        info = flavor.log_model(trained.model, name="model", signature=signature, input_example=example, **extra)
        mlflow.log_dict({"feature_columns": columns, "target": args.target, "task": args.task}, "features.json")
        client = mlflow.MlflowClient()
        version = mlflow.register_model(info.model_uri, args.model_name, tags=lineage)
        client.set_model_version_tag(args.model_name, version.version, "mlops_ops.run_id", run.info.run_id)
        client.set_registered_model_alias(args.model_name, CHALLENGER, version.version)
    return {"run_id": run.info.run_id, "model_name": args.model_name, "version": str(version.version),
            "model_uri": f"models:/{args.model_name}/{version.version}", "alias": CHALLENGER,
            "features": args.features}  # fmt: skip


def parse_result(line: str) -> dict[str, Any] | None:
    """The result an entrypoint printed, from one line of its output; ``None`` for any other line."""
    text = line.strip()
    return json.loads(text[len(RESULT_PREFIX) :]) if text.startswith(RESULT_PREFIX) else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result = train_and_register(args)
    if args.result_file is not None:
        args.result_file.write_text(json.dumps(result))
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
