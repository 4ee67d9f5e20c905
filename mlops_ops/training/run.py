"""The training entrypoint every executor runs: ``python -m mlops_ops.training ...``.

Reads a pinned feature-table snapshot (``<pipeline>.features@<id>``), encodes the spec's feature columns, trains on
``train`` (``validation`` for early stopping, per-epoch validation loss and a tuned threshold), logs params, metrics,
the model (the pyfunc of :mod:`mlops_ops.training.serving`: encoding + estimator, with a signature on raw columns and
an input example) and lineage tags to MLflow, then registers a model version with alias ``challenger``. Registration
is the last step, so a run killed before it registers nothing. The result (run id, version, model URI) is written as
JSON to ``--result-file``: the one result channel of every executor (the local operator reads it from a temporary
folder, the Docker operator copies it out of the container, the Kubernetes operator's XCom sidecar reads it).

Credentials can come in a JSON file named by ``MLOPS_OPS_SECRETS_FILE`` (variables set before anything else runs): the
Docker operator mounts one, so they never appear in the container's configuration (``docker inspect``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_ops import __version__
from mlops_ops._extras import require
from mlops_ops.exceptions import NOT_RETRYABLE_EXIT, TrainingInputError
from mlops_ops.training.evaluation import CHALLENGER

log = logging.getLogger(__name__)
SECRETS_FILE_ENV = "MLOPS_OPS_SECRETS_FILE"
FEATURES_TAG = "mlops_ops.features_snapshot"  # the exact data a version learned from (drift's reference)
RAW_SNAPSHOT_TAG = "mlops_ops.raw_snapshot"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlops_ops.training", description=__doc__)
    parser.add_argument("--features", required=True, help="feature-table snapshot: <pipeline>.features@<snapshot id>")
    parser.add_argument("--model", required=True, help="JSON of the spec's model settings (task, target, features...)")
    parser.add_argument("--trainer", default="sklearn", help="sklearn, torch_mlp or module.path:function")
    parser.add_argument("--params", default="{}", help="JSON object of hyper-parameters")
    parser.add_argument("--model-name", required=True, help="registered model name")
    parser.add_argument("--experiment", default=None, help="MLflow experiment (default: the model name)")
    parser.add_argument("--tags", default="{}", help="JSON object of lineage tags for the run and the version")
    parser.add_argument("--result-file", type=Path, default=None)
    parser.add_argument("--no-alias", action="store_true",
                        help="register the version without moving the 'challenger' alias (replays)")  # fmt: skip
    return parser


REQUEST_ARTIFACT = "mlops_ops/request.json"  # the entrypoint's own arguments: what a replay runs again


def recorded_request(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that decides the model besides the code: kept on the run, read back by ``mlops-ops replay``."""
    return {"features": args.features, "model": json.loads(args.model), "trainer": args.trainer,
            "params": json.loads(args.params), "model_name": args.model_name, "experiment": args.experiment,
            "package_version": __version__}  # fmt: skip


@dataclass
class PreparedSplits:
    data: Any  # TrainingData
    preprocessor: Any
    columns: Any  # FeatureColumns
    labels: Any  # Labels
    example: Any  # a few raw rows (the signature's input example)
    sampled_from: int | None = None


def prepare_splits(features: Any, settings: Any, *, stream: bool = False) -> PreparedSplits:
    """Read train (and validation), choose and encode the feature columns, encode the target. With ``stream``, the
    splits are not loaded: the encoding is fitted on a sample and the trainer reads batches (bounded memory)."""
    import numpy as np

    from mlops_ops.lake.tables import SPLIT_COLUMN
    from mlops_ops.training.data import Labels, load_split
    from mlops_ops.training.features import build_preprocessor, select_columns
    from mlops_ops.training.serving import prepare
    from mlops_ops.training.trainers import TrainingData

    sampled_from = None
    if stream:
        from mlops_ops.training.streaming import FIT_ROWS, SplitStream, target_values

        train = load_split_sample(features, settings.target, FIT_ROWS)
        values, nulls, kind = target_values(features, "train", settings.target)
        labels = Labels.of(settings.task, settings.target, values, nulls, _numeric_arrow(kind), settings.positive_class)
    else:
        train = load_split(features, "train", settings.target)
        if settings.max_rows is not None and len(train) > settings.max_rows:
            sampled_from = len(train)
            log.warning("train split has %d rows; sampling %d (train.max_rows)", len(train), settings.max_rows)
            train = train.sample(n=settings.max_rows, random_state=0).sort_index()
        labels = Labels.infer(settings.task, train[settings.target], settings.positive_class)
    columns = select_columns(train, settings.features, target=settings.target,
                             excluded=(features.key_column, SPLIT_COLUMN))  # fmt: skip
    preprocessor = build_preprocessor(columns, settings.features, scale=True)
    x = np.asarray(preprocessor.fit_transform(prepare(train, columns.kinds)), dtype="float32")
    y = labels.encode(train[settings.target])
    if labels.classes is not None:
        x, y = x[y >= 0], y[y >= 0]
    names = [str(n) for n in preprocessor.get_feature_names_out()]
    has_valid = bool(features.split_rows("validation"))
    if stream:

        def batches(split: str) -> Any:
            return SplitStream(features, split, columns.kinds, preprocessor, labels, settings.target)

        data = TrainingData(settings.task, x, y, None, None, labels.classes, names, stream=batches("train"),
                            valid_stream=batches("validation") if has_valid else None)  # fmt: skip
        return PreparedSplits(data, preprocessor, columns, labels, _example(train, columns))
    x_valid = y_valid = None
    if has_valid:
        valid = load_split(features, "validation", settings.target)
        x_valid = np.asarray(preprocessor.transform(prepare(valid, columns.kinds)), dtype="float32")
        y_valid = labels.encode(valid[settings.target])
        if labels.classes is not None:  # a label the train split never had cannot be learned or scored
            x_valid, y_valid = x_valid[y_valid >= 0], y_valid[y_valid >= 0]
    data = TrainingData(settings.task, x, y, x_valid, y_valid, labels.classes, names)
    return PreparedSplits(data, preprocessor, columns, labels, _example(train, columns), sampled_from)


def load_split_sample(features: Any, target: str, rows: int) -> Any:
    """At most ``rows`` rows of the train split, read file by file (splits are hashed, so any part is a sample)."""
    import pyarrow as pa

    from mlops_ops.lake.tables import SPLIT_COLUMN
    from mlops_ops.training.data import checked
    from mlops_ops.training.streaming import file_batches, split_scan

    scan = split_scan(features, "train")
    batches, have = [], 0
    for batch in file_batches(scan, list(scan.plan_files())):
        batches.append(batch.slice(0, rows - have))
        have += batches[-1].num_rows
        if have >= rows:
            break
    schema = batches[0].schema if batches else None
    frame = pa.Table.from_batches(batches, schema=schema).to_pandas() if batches else scan.to_pandas()
    return checked(frame.drop(columns=[SPLIT_COLUMN]), features, "train", target)


def _numeric_arrow(kind: Any) -> bool:
    import pyarrow as pa

    return kind is not None and (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind))


def _example(train: Any, columns: Any) -> Any:
    """A few raw rows for the signature: numeric columns as double, so consumers may pass ints *or* missing values
    (MLflow refuses a float column, as a column with NaN is, where the signature says long)."""
    example = train[columns.names].head(5).copy()
    for column, kind in columns.kinds.items():
        if kind == "numeric":
            example[column] = example[column].astype("float64")
    return example


def tune_threshold(metric: str, y: Any, positive: Any) -> float:
    """The threshold in (0, 1) that maximises ``metric`` on (validation) labels ``y`` and probabilities."""
    import numpy as np

    m = require("sklearn.metrics")

    scorers = {"f1": m.f1_score, "precision": m.precision_score, "recall": m.recall_score,
               "accuracy": m.accuracy_score}  # fmt: skip
    candidates = np.unique(np.clip(np.quantile(positive, np.linspace(0.01, 0.99, 99)), 1e-6, 1 - 1e-6))
    best, best_score = 0.5, -1.0
    for t in candidates:
        kwargs = {} if metric == "accuracy" else {"zero_division": 0}
        score = float(scorers[metric](y, (positive >= t).astype(int), **kwargs))
        if score > best_score:
            best, best_score = float(t), score
    return best


def train_and_register(args: argparse.Namespace) -> dict[str, Any]:
    mlflow = require("mlflow")

    from mlops_ops.spec import ModelSpec
    from mlops_ops.training.data import open_features
    from mlops_ops.training.packaging import log_tabular_model
    from mlops_ops.training.trainers import resolve

    settings = ModelSpec.model_validate_json(args.model)
    params = json.loads(args.params)
    tags = {str(k): str(v) for k, v in json.loads(args.tags).items()}
    trainer = resolve(args.trainer, settings.task)
    if settings.estimator is not None:
        params.setdefault("estimator", settings.estimator)
    features = open_features(args.features)
    prepared = prepare_splits(features, settings, stream=bool(getattr(trainer, "streams", False)))
    data = prepared.data
    mlflow.set_experiment(args.experiment or args.model_name)
    lineage = {**tags, "mlops_ops.version": __version__, FEATURES_TAG: args.features,
               RAW_SNAPSHOT_TAG: features.raw_snapshot or "", "mlops_ops.trainer": args.trainer,
               "mlops_ops.task": settings.task}  # fmt: skip
    with mlflow.start_run(tags=lineage) as run:
        mlflow.log_params({"trainer": args.trainer, "task": settings.task, "target": settings.target,
                           "n_features": len(prepared.columns.names), "n_encoded": data.x.shape[1],
                           "train_rows": len(data.y), **({"sampled_from": prepared.sampled_from}
                                                          if prepared.sampled_from else {}),
                           **{f"hp.{k}": v for k, v in params.items()}})  # fmt: skip
        trained = trainer(data, params=dict(params),
                          log_metric=lambda name, value, step: mlflow.log_metric(name, value, step=step))  # fmt: skip
        meta: dict[str, Any] = {"task": settings.task, "target": settings.target, "kinds": prepared.columns.kinds,
                                "classes": prepared.labels.classes, "positive_class": prepared.labels.positive_class,
                                "positive_index": 1, "threshold": 0.5}  # fmt: skip
        if settings.task == "binary":
            meta["threshold"] = _threshold(settings.threshold, trained, prepared)
            mlflow.log_metric("decision_threshold", meta["threshold"])
        info = log_tabular_model(mlflow, trained, prepared.preprocessor, meta, prepared.example)
        mlflow.log_dict({"feature_columns": prepared.columns.kinds, "encoded_columns": data.feature_names,
                         "target": settings.target, "task": settings.task,
                         "classes": prepared.labels.classes}, "features.json")  # fmt: skip
        mlflow.log_dict(recorded_request(args), REQUEST_ARTIFACT)
        client = mlflow.MlflowClient()
        version = mlflow.register_model(info.model_uri, args.model_name, tags=lineage)
        client.set_model_version_tag(args.model_name, version.version, "mlops_ops.run_id", run.info.run_id)
        if not args.no_alias:
            client.set_registered_model_alias(args.model_name, CHALLENGER, version.version)
    return {"run_id": run.info.run_id, "model_name": args.model_name, "version": str(version.version),
            "model_uri": f"models:/{args.model_name}/{version.version}",
            "alias": None if args.no_alias else CHALLENGER, "features": args.features}  # fmt: skip


def _threshold(setting: Any, trained: Any, prepared: PreparedSplits) -> float:
    """The binary decision threshold: the spec's number, or tuned on the validation split (read batch by batch when
    the trainer streams)."""
    import numpy as np

    from mlops_ops.spec import TuneThreshold

    if not isinstance(setting, TuneThreshold):
        return float(setting)
    data = prepared.data
    parts = data.valid_stream(0) if data.valid_stream is not None else (
        [(data.x_valid, data.y_valid)] if data.x_valid is not None else [])  # fmt: skip
    scores, labels = [], []
    for x, y in parts:
        if len(x):
            scores.append(positive_scores(trained, x))
            labels.append(np.asarray(y))
    if not scores:
        raise TrainingInputError("train.threshold.tune needs a validation split (preprocess.splits.validation > 0)")
    return tune_threshold(setting.tune, np.concatenate(labels), np.concatenate(scores))


def positive_scores(trained: Any, x: Any) -> Any:
    """P(positive class) of a binary model on an encoded matrix."""
    import numpy as np

    if trained.kind == "torch":
        torch = require("torch")

        with torch.no_grad():
            return torch.sigmoid(trained.model(torch.from_numpy(np.asarray(x, dtype="float32"))).reshape(-1)).numpy()
    return np.asarray(trained.model.predict_proba(x))[:, 1]


def load_secrets(environ: dict[str, str] | None = None) -> list[str]:
    """Set the variables of the file ``MLOPS_OPS_SECRETS_FILE`` names (a JSON object of strings); their names."""
    import os

    env = os.environ if environ is None else environ
    path = env.get(SECRETS_FILE_ENV)
    if not path:
        return []
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"{SECRETS_FILE_ENV}={path}: cannot read a JSON object of variables ({err})") from err
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise SystemExit(f"{SECRETS_FILE_ENV}={path}: must hold a JSON object of strings")
    env.update(values)
    return sorted(values)


def _terminated(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM (a killed task: the operator's on_kill, `docker stop`, a pod's deletion) ends the run as FAILED and exits
    # before registration. Needed explicitly: as a container's PID 1, Python would otherwise ignore it.
    signal.signal(signal.SIGTERM, _terminated)
    names = load_secrets()
    if names:
        log.info("credentials from %s: %s", SECRETS_FILE_ENV, ", ".join(names))
    try:
        result = train_and_register(args)
    except TrainingInputError as err:  # the same request fails the same way on a retry: say so by the exit code
        log.error("cannot train (not retryable): %s", err)
        return NOT_RETRYABLE_EXIT
    if args.result_file is not None:
        args.result_file.write_text(json.dumps(result))
    log.info("registered %s version %s (run %s)", result["model_name"], result["version"], result["run_id"])
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
