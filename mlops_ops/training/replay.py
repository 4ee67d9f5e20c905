"""Replay a registered model version: train again from exactly what it recorded, register the result beside it.

The training entrypoint keeps its own arguments on every run (``mlops_ops/request.json``): the feature-table
snapshot (read again by Iceberg time travel, whatever was built since), the model settings, the trainer, the
hyper-parameters (seeds included: the trainers' defaults are fixed) and the package version. A replay runs the
entrypoint with them, registers a new version tagged ``mlops_ops.replay_of`` without moving any alias, and compares
the metrics both runs logged during the fit plus every metric of the task for both versions on the recorded
snapshot's test split.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPLAY_TAG = "mlops_ops.replay_of"


class NotReplayableError(Exception):
    """The version did not record what a replay needs."""


class RefusedRequestError(NotReplayableError):
    """A recorded request the library will not run: anyone with MLflow's credentials (trainer code included) can
    write a run's artifacts, so a recorded request is outside input, checked as a spec and a run's conf are."""


def check_request(request: Any, where: str, params_schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``request`` (a version's ``request.json``) when the library may run it: the model settings a spec allows, a
    trainer the callable trust model admits, hyper-parameters within the trainer's schema (``params_schema``: the
    pipeline's own, else the trainer's built-in or generic one). Raises :class:`RefusedRequestError` naming why."""
    from pydantic import ValidationError

    from mlops_ops.callables import trust_problem
    from mlops_ops.spec import DOTTED_PATH, ModelSpec
    from mlops_ops.training.params_schema import problems, schema_for

    def refuse(why: str) -> RefusedRequestError:
        return RefusedRequestError(f"{where}: the recorded request is refused, nothing was trained: {why}")

    if not isinstance(request, dict):
        raise refuse(f"expected a JSON object, got {type(request).__name__}")
    kinds = {"features": str, "model": dict, "trainer": str, "params": dict}
    wrong = [f"'{k}' must be {t.__name__}" for k, t in kinds.items() if not isinstance(request.get(k), t)]
    if wrong:
        raise refuse("; ".join(wrong))
    try:
        ModelSpec.model_validate(request["model"])
    except ValidationError as err:
        first = err.errors()[0]
        raise refuse(f"model.{'.'.join(map(str, first['loc']))}: {first['msg']}") from err
    trainer = request["trainer"]
    if trainer not in ("sklearn", "torch_mlp"):
        if not re.match(DOTTED_PATH, trainer):
            raise refuse(f"trainer {trainer[:200]!r} is not 'sklearn', 'torch_mlp' or 'package.module:function'")
        problem = trust_problem(trainer)
        if problem:
            raise refuse(f"trainer: {problem}")
    found = problems(request["params"], params_schema or schema_for(trainer))
    if found:
        raise refuse(f"params do not fit trainer '{trainer}': {'; '.join(found)}")
    return request


@dataclass
class MetricDiff:
    name: str
    original: float
    replay: float

    @property
    def difference(self) -> float:
        return abs(self.replay - self.original)


@dataclass
class ReplayResult:
    model_name: str
    original_version: str
    version: str
    run_id: str
    request: dict[str, Any]
    metrics: list[MetricDiff] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def within(self, tolerance: float) -> bool:
        return all(m.difference <= tolerance for m in self.metrics)

    def as_dict(self, tolerance: float) -> dict[str, Any]:
        return {"model_name": self.model_name, "original_version": self.original_version, "version": self.version,
                "run_id": self.run_id, "features": self.request["features"], "tolerance": tolerance,
                "within_tolerance": self.within(tolerance), "warnings": self.warnings,
                "metrics": {m.name: {"original": m.original, "replay": m.replay, "difference": m.difference}
                            for m in self.metrics}}  # fmt: skip


def recorded_request(
    client: Any, name: str, version: str, params_schema: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """The entrypoint arguments the version's run kept, checked (:func:`check_request`), and that run's id."""
    from mlflow.exceptions import MlflowException

    from mlops_ops.training.run import REQUEST_ARTIFACT

    run_id = client.get_model_version(name, version).run_id
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, REQUEST_ARTIFACT, tmp)
            text = Path(path).read_text()
    except (MlflowException, OSError) as err:
        raise NotReplayableError(
            f"{name} v{version} (run {run_id}) has no {REQUEST_ARTIFACT}: it was trained before replays were "
            "recorded, or outside the mlops-ops entrypoint"
        ) from err
    where = f"{name} v{version} (run {run_id}) {REQUEST_ARTIFACT}"
    try:
        request = json.loads(text)
    except (ValueError, RecursionError) as err:  # a hand-written artifact
        raise RefusedRequestError(f"{where}: not JSON ({err})") from err
    return check_request(request, where, params_schema), str(run_id)


TWIN_FIELDS = ("features", "model", "trainer", "params")  # what decides the model a request trains


def twin_reason(client: Any, name: str, challenger: str, champion: str) -> str | None:
    """Why ``challenger`` is the champion's twin (trained from the same features snapshot with the same request,
    so nothing is new to promote), or ``None``: it differs, or either version recorded no request."""
    try:
        new, _ = recorded_request(client, name, challenger)
        old, _ = recorded_request(client, name, champion)
    except NotReplayableError:
        return None
    if any(new.get(k) != old.get(k) for k in TWIN_FIELDS):
        return None
    return (f"a twin of champion v{champion}: the same features snapshot ({new['features']}), model settings, "
            f"trainer and parameters; nothing new to promote")  # fmt: skip


def replay(client: Any, name: str, version: str) -> ReplayResult:
    """Train again from the recorded request (in this process) and compare the runs' metrics."""
    from mlops_ops import __version__
    from mlops_ops.training.run import build_parser, train_and_register

    request, original_run = recorded_request(client, name, version)
    args = build_parser().parse_args(
        ["--features", request["features"], "--model", json.dumps(request["model"]), "--trainer", request["trainer"],
         "--params", json.dumps(request["params"]), "--model-name", name,
         "--tags", json.dumps({REPLAY_TAG: f"{name}@{version}"}), "--no-alias",
         *(["--experiment", request["experiment"]] if request.get("experiment") else [])]
    )  # fmt: skip
    result = train_and_register(args)
    warnings = []
    if request.get("package_version") != __version__:
        warnings.append(f"trained with mlops-ops {request.get('package_version')}, replayed with {__version__}")
    before = dict(client.get_run(original_run).data.metrics)
    after = dict(client.get_run(result["run_id"]).data.metrics)
    before = {k: v for k, v in before.items() if not k.startswith("test_")}  # the pipeline's evaluation, not the fit
    target, task = request["model"]["target"], request["model"]["task"]
    before.update(_split_metrics(f"models:/{name}/{version}", request["features"], target, task))
    after.update(_split_metrics(f"models:/{name}/{result['version']}", request["features"], target, task))
    shared = sorted(set(before) & set(after))
    diffs = [MetricDiff(k, float(before[k]), float(after[k])) for k in shared]
    return ReplayResult(name, str(version), str(result["version"]), str(result["run_id"]), request, diffs, warnings)


def render(result: ReplayResult, tolerance: float) -> str:
    lines = [f"{result.model_name} v{result.original_version} replayed as v{result.version} (run {result.run_id}, no "
             f"alias moved) from {result.request['features']}, trainer {result.request['trainer']}"]  # fmt: skip
    lines += [f"  warning: {w}" for w in result.warnings]
    lines.append(f"  {'metric':<28} {'original':>14} {'replay':>14} {'difference':>12}")
    for m in result.metrics:
        flag = "" if m.difference <= tolerance else "  > tolerance"
        lines.append(f"  {m.name:<28} {m.original:>14.6g} {m.replay:>14.6g} {m.difference:>12.3g}{flag}")
    verdict = "identical" if all(m.difference == 0 for m in result.metrics) else (
        f"within {tolerance:g}" if result.within(tolerance) else f"NOT within {tolerance:g}")  # fmt: skip
    lines.append(f"  {len(result.metrics)} metric(s): {verdict}")
    return "\n".join(lines)


def _split_metrics(model_uri: str, features_ref: str, target: str, task: str) -> dict[str, float]:
    """Every built-in metric of the task for one model on the recorded snapshot's test split (``test_<metric>``)."""
    from mlops_ops.training.data import Labels, load_split, open_features
    from mlops_ops.training.evaluation import ModelScorer, compute_metrics
    from mlops_ops.training.tasks import METRICS

    scorer = ModelScorer(model_uri)
    meta = scorer.meta or {}
    labels = Labels(meta.get("task", task), meta.get("classes"), meta.get("positive_class"))
    frame = load_split(open_features(features_ref), "test", target)
    values = compute_metrics(labels.encode(frame[target]), scorer.predictions(frame), list(METRICS[task]),
                             classes=labels.classes)  # fmt: skip
    return {f"test_{k}": float(v) for k, v in values.items()}
