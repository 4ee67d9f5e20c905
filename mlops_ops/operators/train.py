"""``TrainModelOperator``: the training entrypoint in a subprocess of the worker (``train.executor: local``).

The subprocess (``python -m mlops_ops.training``) is the entrypoint the Docker and Kubernetes operators
(:mod:`~mlops_ops.operators.train_docker`, :mod:`~mlops_ops.operators.train_kubernetes`) run in their containers.
A crash or an out-of-memory kill of the trainer fails this task, not the worker; MLflow runs it left open are marked
FAILED, and nothing is registered (registration is the entrypoint's last step).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_ops.operators.training_request import TrainingRequest, training_failure
from mlops_ops.ui.links import MlflowRunLink, ModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


def _worker_pythonpath() -> str:
    """The worker's import path for the trainer: what the worker can import (a trainer or transform module in the
    DAGs folder, plugins, a test's rootdir) the trainer can too, without setting PYTHONPATH by hand."""
    entries = [*os.environ.get("PYTHONPATH", "").split(os.pathsep), *(p for p in sys.path if p)]
    return os.pathsep.join(dict.fromkeys(e for e in entries if e and Path(e).is_dir()))


class TrainModelOperator(BaseOperator):
    """Train on a feature table in a subprocess, log to MLflow and register a version with alias ``challenger``.

    :param training: what to train (:class:`~mlops_ops.operators.training_request.TrainingRequest` or its fields).
    Returns ``{"run_id", "model_name", "version", "model_uri", "alias", "features"}``.
    """

    template_fields: Sequence[str] = ("training",)
    operator_extra_links = (MlflowRunLink(), ModelVersionLink())
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        training: TrainingRequest | Mapping[str, Any],
        mlflow_conn_id: str = "mlflow_default",
        iceberg_conn_id: str = "iceberg_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training = TrainingRequest.of(training)
        self.mlflow_conn_id = mlflow_conn_id
        self.iceberg_conn_id = iceberg_conn_id
        self._child: subprocess.Popen[str] | None = None

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops.hooks.iceberg import IcebergCatalogHook
        from mlops_ops.hooks.mlflow import MlflowHook

        inputs = self.training.inputs(context, self.task_id, self.mlflow_conn_id)
        # The trainer imports no Airflow: the catalog reaches it as pyiceberg's own variables, MLflow as its own.
        env = {**os.environ, **MlflowHook(self.mlflow_conn_id).client_env(),
               **IcebergCatalogHook(self.iceberg_conn_id).pyiceberg_env(), "PYTHONUNBUFFERED": "1",
               "PYTHONPATH": _worker_pythonpath()}  # fmt: skip
        log.info("training %s with %s (params %s) in a subprocess", self.training.model_name, self.training.trainer,
                 inputs.params)  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="mlops-ops-train-") as folder:
            result_file = Path(folder) / "result.json"
            argv = [sys.executable, "-m", "mlops_ops.training", *self.training.arguments(inputs, str(result_file))]
            self._child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            assert self._child.stdout is not None
            for line in self._child.stdout:
                log.info("trainer: %s", line.rstrip())
            code = self._child.wait()
            output = json.loads(result_file.read_text()) if code == 0 and result_file.is_file() else None
        if output is None:
            closed = self.training.fail_open_runs(self.mlflow_conn_id, inputs)
            how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
            message = f"training subprocess failed ({how}); nothing was registered" + (
                f"; marked MLflow run(s) {', '.join(closed)} FAILED" if closed else "")  # fmt: skip
            raise training_failure(code, message)
        return self.training.result(output, "subprocess")

    def on_kill(self) -> None:
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signal.SIGTERM)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the features snapshot -> the registered model version; the MLflow run as a run facet."""
        return self.training.lineage(task_instance, self.mlflow_conn_id, self.iceberg_conn_id)
