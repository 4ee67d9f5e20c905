"""What every training operator runs, whatever the backend: the entrypoint's arguments, the run's lineage tags and
the result it hands back. Each backend operator (local subprocess, Docker, Kubernetes) holds one
:class:`TrainingRequest` (composition: the three subclass different Airflow operators)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from mlops_ops.naming import PREPROCESS_TASK, QUALITY_GATE_TASK, QUALITY_XCOM_KEY, REPLAY_PARAM, TRAIN_PARAMS_KEY

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)
ENTRYPOINT = ["python", "-m", "mlops_ops.training"]
RESULT_KEYS = ("run_id", "model_name", "version", "model_uri", "alias")


@dataclass(frozen=True)
class TrainingInputs:
    features: str
    params: dict[str, Any]
    tags: dict[str, str]
    model: dict[str, Any] | None = None  # a replay: the recorded model settings and trainer, instead of the spec's
    trainer: str | None = None
    replay_of: str | None = None  # MODEL@VERSION: registered without moving an alias


@dataclass
class TrainingRequest:
    """:param pipeline: the pipeline (lineage tag).
    :param model_name: the registered model; also the MLflow experiment unless ``experiment`` is given.
    :param target: the label column. :param task: ``binary``, ``multiclass`` or ``regression``.
    :param model_options: the rest of the spec's model settings (``positive_class``, ``threshold``, ``estimator``,
        ``features``, ``max_rows``; see :class:`mlops_ops.spec.ModelSpec`), validated by the entrypoint.
    :param trainer: ``sklearn``, ``torch_mlp`` or ``module.path:function``.
    :param trainer_params: hyper-parameters; the DAG Param ``train_params`` overrides them key by key.
    :param features: feature-table snapshot ``<pipeline>.features@<id>``; default: what ``features_task_id`` returned.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("features", "model_name", "experiment", "trainer_params")

    pipeline: str
    model_name: str
    target: str
    task: Literal["binary", "multiclass", "regression"]
    model_options: dict[str, Any] = field(default_factory=dict)
    trainer: str = "sklearn"
    trainer_params: dict[str, Any] = field(default_factory=dict)
    params_schema: dict[str, Any] | None = None  # the trainer's (mlops_ops.training.params_schema); None: unchecked
    features: str | None = None
    features_task_id: str = PREPROCESS_TASK
    experiment: str | None = None

    @classmethod
    def of(cls, value: TrainingRequest | Mapping[str, Any]) -> TrainingRequest:
        """From a request or its JSON form (what a DAG plan holds)."""
        return value if isinstance(value, TrainingRequest) else cls(**dict(value))

    def inputs(self, context: Context, task_id: str, mlflow_conn_id: str = "mlflow_default") -> TrainingInputs:
        """The feature snapshot, the merged hyper-parameters and the lineage tags of this run; with the DAG Param
        ``replay_of``, what that version recorded instead (its snapshot, settings, trainer and parameters)."""
        replay = (context.get("params") or {}).get(REPLAY_PARAM)
        if replay:
            return self._replay_inputs(str(replay), self._tags(context, task_id), mlflow_conn_id)
        features = self.features
        if not features:
            upstream = context["ti"].xcom_pull(task_ids=self.features_task_id)
            features = upstream.get("features") if isinstance(upstream, dict) else None
        if not features:
            raise ValueError(f"no feature table: pass features or run after '{self.features_task_id}'")
        overrides = (context.get("params") or {}).get(TRAIN_PARAMS_KEY) or {}
        if not isinstance(overrides, dict):
            raise ValueError(f"DAG Param '{TRAIN_PARAMS_KEY}' must be a JSON object, got {type(overrides).__name__}")
        params = {**self.trainer_params, **overrides}
        if self.params_schema is not None:
            from mlops_ops._compat import airflow_exception
            from mlops_ops.training.params_schema import problems

            found = problems(params, self.params_schema)
            if found:  # no retry can fix it
                raise airflow_exception("AirflowFailException")(
                    f"hyper-parameters of this run do not fit trainer '{self.trainer}': {'; '.join(found)}"
                )
        tags = self._tags(context, task_id)
        quality = context["ti"].xcom_pull(task_ids=QUALITY_GATE_TASK, key=QUALITY_XCOM_KEY)
        if isinstance(quality, dict) and quality:
            tags["mlops_ops.raw_batches"] = ",".join(sorted(quality))[:4000]
            ids = [str(v["result_id"]) for v in quality.values() if isinstance(v, dict) and v.get("result_id")]
            if ids:
                tags["mlops_ops.gx_validation"] = ",".join(ids)[:4000]
        return TrainingInputs(features, params, tags)

    def _tags(self, context: Context, task_id: str) -> dict[str, str]:
        tags = {"mlops_ops.pipeline": self.pipeline, "airflow.dag_id": context["dag"].dag_id,
                "airflow.run_id": str(context["run_id"]), "airflow.task_id": task_id}  # fmt: skip
        dag_version = getattr(context["ti"], "dag_version_id", None)  # Airflow 3's DAG versioning
        if dag_version:
            tags["airflow.dag_version_id"] = str(dag_version)
        commit = os.environ.get("MLOPS_OPS_GIT_COMMIT")
        if commit:
            tags["mlops_ops.git_commit"] = commit
        return tags

    def _replay_inputs(self, ref: str, tags: dict[str, str], mlflow_conn_id: str) -> TrainingInputs:
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.lineage.chain import parse_model_ref
        from mlops_ops.training.replay import REPLAY_TAG, RefusedRequestError, recorded_request

        name, version = parse_model_ref(ref)
        if name != self.model_name:
            raise ValueError(f"DAG Param '{REPLAY_PARAM}' names model '{name}'; this pipeline trains "
                             f"'{self.model_name}': replay it with `mlops-ops replay {ref}` or its DAG")  # fmt: skip
        try:
            request, run_id = recorded_request(MlflowHook(mlflow_conn_id).get_conn(), name, version,
                                               self.params_schema)  # fmt: skip
        except RefusedRequestError as err:  # the same artifact is refused on every retry
            from mlops_ops._compat import airflow_exception

            raise airflow_exception("AirflowFailException")(str(err)) from err
        log.info("replaying %s (run %s): %s, trainer %s, params %s", ref, run_id, request["features"],
                 request["trainer"], request["params"])  # fmt: skip
        return TrainingInputs(request["features"], dict(request["params"]), {**tags, REPLAY_TAG: ref},
                              model=dict(request["model"]), trainer=str(request["trainer"]), replay_of=ref)  # fmt: skip

    def arguments(self, inputs: TrainingInputs, result_file: str) -> list[str]:
        """The entrypoint's arguments after ``python -m mlops_ops.training``: the same for every backend."""
        settings = inputs.model or {**self.model_options, "task": self.task, "target": self.target}
        return ["--features", inputs.features, "--model", json.dumps(settings, sort_keys=True),
                "--trainer", inputs.trainer or self.trainer, "--params", json.dumps(inputs.params, sort_keys=True),
                "--model-name", self.model_name, "--experiment", self.experiment or self.model_name,
                "--tags", json.dumps(inputs.tags, sort_keys=True), "--result-file", result_file,
                *(["--no-alias"] if inputs.replay_of else [])]  # fmt: skip

    def result(self, output: Any, where: str) -> dict[str, Any]:
        """The entrypoint's result file, as every backend hands it back; an error when it wrote none."""
        if not isinstance(output, dict) or any(k not in output for k in RESULT_KEYS):
            raise RuntimeError(f"the trainer ({where}) ended without a result file: nothing was registered")
        log.info("registered %s version %s as %s (run %s)", output["model_name"], output["version"],
                 output["alias"], output["run_id"])  # fmt: skip
        return dict(output)

    def lineage(self, task_instance: Any, mlflow_conn_id: str, iceberg_conn_id: str) -> Any:
        """OpenLineage of the training task, from its result (what every executor's operator returns)."""
        from mlops_ops.lineage import openlineage as ol
        from mlops_ops.operators import openlineage as emit

        result = emit.task_result(task_instance)
        if not result:
            return None
        lineage = ol.training(result, catalog=emit.catalog(iceberg_conn_id),
                              tracking_uri=emit.tracking_uri(mlflow_conn_id), model_name=self.model_name)  # fmt: skip
        return emit.as_operator_lineage(lineage)

    def fail_open_runs(self, mlflow_conn_id: str, inputs: TrainingInputs) -> list[str]:
        """Mark the MLflow runs a dead trainer left RUNNING (this DAG run and task) as FAILED; their ids."""
        from mlops_ops.hooks.mlflow import MlflowHook

        tags = inputs.tags
        try:
            client = MlflowHook(mlflow_conn_id).get_conn()
            experiment = client.get_experiment_by_name(self.experiment or self.model_name)
            if experiment is None:
                return []
            query = (
                f"tags.`airflow.run_id` = '{tags['airflow.run_id']}' and "
                f"tags.`airflow.task_id` = '{tags['airflow.task_id']}' and attributes.status = 'RUNNING'"
            )
            runs = client.search_runs([experiment.experiment_id], filter_string=query)
            for run in runs:
                client.set_terminated(run.info.run_id, status="FAILED")
            return [r.info.run_id for r in runs]
        except Exception as err:  # noqa: BLE001 - the task fails anyway; this is cleanup
            log.warning("could not mark open MLflow runs failed: %s", err)
            return []


def raise_not_retryable_exit(err: BaseException, where: str) -> None:
    """The container backends run the trainer with the provider's ``skip_on_exit_code=NOT_RETRYABLE_EXIT`` (the one
    exit-code hook Docker's and Kubernetes' operators have); the skip it raises is a request that cannot train:
    raised here as that failure (not retried), anything else is left to the caller to re-raise."""
    from mlops_ops._compat import airflow_exception
    from mlops_ops.exceptions import NOT_RETRYABLE_EXIT

    if isinstance(err, airflow_exception("AirflowSkipException")):
        raise training_failure(NOT_RETRYABLE_EXIT, f"{where} failed (exit code {NOT_RETRYABLE_EXIT})") from err


def training_failure(code: int | None, message: str) -> Exception:
    """The error a training operator raises for a trainer that ended with ``code`` and no result: a request that
    cannot train (exit ``NOT_RETRYABLE_EXIT``, :class:`~mlops_ops.exceptions.TrainingInputError`) fails the task
    without retries, since every retry would fail the same way; anything else (a service down, a kill) may pass on a
    retry."""
    from mlops_ops.exceptions import NOT_RETRYABLE_EXIT

    if code == NOT_RETRYABLE_EXIT:
        from mlops_ops._compat import airflow_exception

        return airflow_exception("AirflowFailException")(
            f"{message}; the request cannot train (the trainer's log above says why): not retried"
        )
    return RuntimeError(message)
