"""``TrainModelOperator``: run the training entrypoint in a subprocess of the worker.

The subprocess (``python -m mlops_ops.training``) is the same entrypoint the Docker and
Kubernetes executors run in their containers. A crash or an out-of-memory kill of the
trainer fails this task, not the worker; MLflow runs it left open are marked FAILED, and
nothing is registered (registration is the entrypoint's last step).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from mlops_ops.naming import PREPROCESS_TASK, QUALITY_GATE_TASK, QUALITY_XCOM_KEY
from mlops_ops.training.executors import ContainerSettings
from mlops_ops.ui.links import MlflowRunLink, ModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)
PARAMS_KEY = "train_params"  # DAG Param: hyper-parameters given at trigger time override the spec's


def _worker_pythonpath() -> str:
    """The worker's import path for the trainer: what the worker can import (a trainer or transform module in the
    DAGs folder, plugins, a test's rootdir) the trainer can too, without setting PYTHONPATH by hand."""
    entries = [*os.environ.get("PYTHONPATH", "").split(os.pathsep), *(p for p in sys.path if p)]
    return os.pathsep.join(dict.fromkeys(e for e in entries if e and Path(e).is_dir()))


class TrainModelOperator(BaseOperator):
    """Train on a feature table, log to MLflow and register a version with alias ``challenger``.

    :param features: feature-table snapshot ``<pipeline>.features@<id>``; default: what ``features_task_id`` returned.
    :param task: ``binary``, ``multiclass`` or ``regression``.
    :param model_options: the rest of the spec's model settings (``positive_class``, ``threshold``, ``estimator``,
        ``features``, ``max_rows``; see :class:`mlops_ops.spec.ModelSpec`), validated when the task runs.
    :param trainer: ``sklearn``, ``torch_mlp`` or ``module.path:function``.
    :param run_in: ``local`` (a subprocess of the worker), ``docker`` or ``kubernetes`` (with ``container``).
    :param trainer_params: hyper-parameters; the DAG Param ``train_params`` (a JSON object given
        when triggering) overrides them key by key.
    Returns ``{"run_id", "model_name", "version", "model_uri", "alias", "features"}``.
    """

    template_fields: Sequence[str] = ("features", "model_name", "experiment", "trainer_params")
    template_fields_renderers = {"trainer_params": "json"}
    operator_extra_links = (MlflowRunLink(), ModelVersionLink())
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        pipeline: str,
        model_name: str,
        target: str,
        task: Literal["binary", "multiclass", "regression"],
        model_options: Mapping[str, Any] | None = None,
        trainer: str = "sklearn",
        trainer_params: Mapping[str, Any] | None = None,
        features: str | None = None,
        features_task_id: str = PREPROCESS_TASK,
        experiment: str | None = None,
        run_in: Literal["local", "docker", "kubernetes"] = "local",
        container: ContainerSettings | dict[str, Any] | None = None,
        mlflow_conn_id: str = "mlflow_default",
        iceberg_conn_id: str = "iceberg_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.model_name = model_name
        self.target = target
        self.task = task
        self.model_options = dict(model_options or {})
        self.trainer = trainer
        self.trainer_params = dict(trainer_params or {})
        self.features = features
        self.features_task_id = features_task_id
        self.experiment = experiment
        self.run_in = run_in  # not ``executor``: BaseOperator.executor names the Airflow executor
        self.container = container
        self.mlflow_conn_id = mlflow_conn_id
        self.iceberg_conn_id = iceberg_conn_id
        self._child: subprocess.Popen[str] | None = None

    def resolve_inputs(self, context: Context) -> tuple[str, dict[str, Any], dict[str, str]]:
        """The feature snapshot, the merged hyper-parameters and the lineage tags of this run."""
        features = self.features
        if not features:
            upstream = context["ti"].xcom_pull(task_ids=self.features_task_id)
            features = upstream.get("features") if isinstance(upstream, dict) else None
        if not features:
            raise ValueError(f"no feature table: pass features or run after '{self.features_task_id}'")
        overrides = (context.get("params") or {}).get(PARAMS_KEY) or {}
        if not isinstance(overrides, dict):
            raise ValueError(f"DAG Param '{PARAMS_KEY}' must be a JSON object, got {type(overrides).__name__}")
        params = {**self.trainer_params, **overrides}
        tags = {"mlops_ops.pipeline": self.pipeline, "airflow.dag_id": context["dag"].dag_id,
                "airflow.run_id": str(context["run_id"]), "airflow.task_id": self.task_id}  # fmt: skip
        quality = context["ti"].xcom_pull(task_ids=QUALITY_GATE_TASK, key=QUALITY_XCOM_KEY)
        if isinstance(quality, dict) and quality:
            tags["mlops_ops.raw_batches"] = ",".join(sorted(quality))[:4000]
            ids = [str(v["result_id"]) for v in quality.values() if isinstance(v, dict) and v.get("result_id")]
            if ids:
                tags["mlops_ops.gx_validation"] = ",".join(ids)[:4000]
        commit = os.environ.get("MLOPS_OPS_GIT_COMMIT")
        if commit:
            tags["mlops_ops.git_commit"] = commit
        return features, params, tags

    def command(self, features: str, params: dict[str, Any], tags: dict[str, str]) -> list[str]:
        """The entrypoint's arguments after ``python -m mlops_ops.training`` (shared by every executor)."""
        model = json.dumps({**self.model_options, "task": self.task, "target": self.target}, sort_keys=True)
        return ["--features", features, "--model", model, "--trainer", self.trainer,
                "--params", json.dumps(params, sort_keys=True), "--model-name", self.model_name,
                "--experiment", self.experiment or self.model_name,
                "--tags", json.dumps(tags, sort_keys=True)]  # fmt: skip

    def container_operator(self, features: str, params: dict[str, Any], tags: dict[str, str]) -> Any:
        """The DockerOperator or KubernetesPodOperator that runs the entrypoint (rendered, not run)."""
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.training.executors import docker_operator, pod_operator

        if self.container is None:
            raise ValueError(f"executor '{self.run_in}' needs container settings (image, resources)")
        client_env = MlflowHook(self.mlflow_conn_id).client_env()
        env = {"MLFLOW_TRACKING_URI": client_env.pop("MLFLOW_TRACKING_URI"), "PYTHONUNBUFFERED": "1"}
        args = self.command(features, params, tags)
        settings = ContainerSettings.of(self.container)
        if self.run_in == "kubernetes":
            labels = {"mlops-ops/pipeline": self.pipeline, "mlops-ops/model": self.model_name[:63]}
            return pod_operator(self.task_id, settings, args, env, labels)
        secret_env = {**client_env, **self._catalog_env()}
        return docker_operator(self.task_id, settings, args, env, secret_env)

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.hooks.mlflow import MlflowHook

        features, params, tags = self.resolve_inputs(context)
        if self.run_in != "local":
            return self._run_container(context, features, params, tags)
        hook = MlflowHook(self.mlflow_conn_id)
        # The trainer imports no Airflow: the catalog reaches it as pyiceberg's own variables, MLflow as its own.
        env = {**os.environ, **hook.client_env(), **self._catalog_env(), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": _worker_pythonpath()}  # fmt: skip
        argv = [sys.executable, "-m", "mlops_ops.training", *self.command(features, params, tags)]
        log.info("training %s with %s (params %s) in a subprocess", self.model_name, self.trainer, params)
        from mlops_ops.training.run import parse_result

        result: dict[str, Any] | None = None
        self._child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert self._child.stdout is not None
        for line in self._child.stdout:
            parsed = parse_result(line)
            if parsed is not None:
                result = parsed
            else:
                log.info("trainer: %s", line.rstrip())
        code = self._child.wait()
        if code != 0 or result is None:
            closed = self._fail_open_runs(hook, tags)
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            raise RuntimeError(
                f"training subprocess failed ({how}); nothing was registered"
                + (f"; marked MLflow run(s) {', '.join(closed)} FAILED" if closed else "")
            )
        log.info("registered %s version %s as %s (run %s)", result["model_name"], result["version"],
                 result["alias"], result["run_id"])  # fmt: skip
        return result

    def _catalog_env(self) -> dict[str, str]:
        from mlops_ops.hooks.iceberg import IcebergCatalogHook

        return IcebergCatalogHook(self.iceberg_conn_id).pyiceberg_env()

    def _run_container(self, context: Context, features: str, params: dict[str, Any], tags: dict[str, str]) -> Any:
        from mlops_ops.training.run import parse_result

        output = self.container_operator(features, params, tags).execute(context)
        if isinstance(output, dict):
            return output  # the pod wrote the result file the XCom sidecar returns
        text = output[-1] if isinstance(output, list) else str(output or "")
        result = parse_result(text)
        if result is None:
            raise RuntimeError(f"the training container ended without a result line (last output: {text[:200]!r})")
        return result

    def _fail_open_runs(self, hook: Any, tags: dict[str, str]) -> list[str]:
        """Mark the runs the dead trainer left RUNNING (this DAG run and task) as FAILED."""
        try:
            client = hook.get_conn()
            experiment = client.get_experiment_by_name(self.experiment or self.model_name)
            if experiment is None:
                return []
            query = (f"tags.`airflow.run_id` = '{tags['airflow.run_id']}' and "
                     f"tags.`airflow.task_id` = '{self.task_id}' and attributes.status = 'RUNNING'")  # fmt: skip
            runs = client.search_runs([experiment.experiment_id], filter_string=query)
            for run in runs:
                client.set_terminated(run.info.run_id, status="FAILED")
            return [r.info.run_id for r in runs]
        except Exception as err:  # noqa: BLE001 - the task fails anyway; this is cleanup
            log.warning("could not mark open MLflow runs failed: %s", err)
            return []

    def on_kill(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signal.SIGTERM)
