"""``TrainModelDockerOperator``: the training entrypoint in a container of the trainer image
(``train.executor: docker``), as Airflow's own ``DockerOperator``: its retries, ``on_kill`` (stops and removes the
container) and logs.

Credentials (MLflow's S3 keys, the Iceberg catalog's) never enter the container's configuration, the rendered
fields or the log: they are written to a JSON file in a private temporary folder of the worker, mounted read-only
and named by ``MLOPS_OPS_SECRETS_FILE`` (the entrypoint reads it first), and the folder is removed when the task
ends. That needs an engine on the worker's host (the default socket, or ``DOCKER_HOST``); the container runs as the
worker's user so that it can read the file. The result comes back as the entrypoint's result file, copied out of the
container before it is removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.providers.docker.operators.docker import DockerOperator

from mlops_ops.exceptions import NOT_RETRYABLE_EXIT
from mlops_ops.operators.training_request import ENTRYPOINT, TrainingRequest, raise_not_retryable_exit
from mlops_ops.spec import ContainerSpec
from mlops_ops.ui.links import MlflowRunLink, ModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context
    from docker.types import Mount

RESULT_PATH = "/tmp/mlops-ops-result.json"  # noqa: S108 - inside the container
SECRETS_DIR = "/run/mlops-ops"
KILL_GRACE_S = 3  # Airflow's supervisor sends SIGKILL 5 s after SIGTERM


def docker_memory(memory: str) -> str:
    """Kubernetes quantities (``2Gi``, ``512Mi``) as Docker sizes (bytes)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?", memory)
    if not match:
        raise ValueError(f"memory '{memory}' is not a quantity like 512Mi or 2Gi")
    number, unit = match.groups()
    if unit is None:
        return number
    bytes_per = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    return str(int(float(number) * bytes_per[unit]))


def _mount(text: str, *, read_only: bool = False) -> Mount:
    from docker.types import Mount

    source, target, *mode = text.split(":")
    return Mount(target=target, source=source, type="bind", read_only=read_only or mode == ["ro"])


@contextmanager
def secrets_file(values: Mapping[str, str]) -> Iterator[str]:
    """A private folder of the worker holding ``secrets.json``; removed on exit, whatever happened."""
    folder = tempfile.mkdtemp(prefix="mlops-ops-secrets-")  # mode 0700
    try:
        fd = os.open(Path(folder) / "secrets.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(dict(values), out)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class TrainModelDockerOperator(DockerOperator):
    """Train in the trainer image on a Docker engine; register a version with alias ``challenger``.

    :param training: what to train (:class:`~mlops_ops.operators.training_request.TrainingRequest` or its fields).
    :param container: image, resources and ``docker`` settings (:class:`~mlops_ops.spec.ContainerSpec` or its JSON).
    Returns the entrypoint's result, as :class:`~mlops_ops.operators.train.TrainModelOperator` does.
    """

    template_fields: Sequence[str] = (*DockerOperator.template_fields, "training")
    operator_extra_links = (MlflowRunLink(), ModelVersionLink())
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        training: TrainingRequest | Mapping[str, Any],
        container: ContainerSpec | Mapping[str, Any],
        mlflow_conn_id: str = "mlflow_default",
        iceberg_conn_id: str = "iceberg_default",
        **kwargs: Any,
    ) -> None:
        from docker.types import DeviceRequest

        request = TrainingRequest.of(training)
        spec = container if isinstance(container, ContainerSpec) else ContainerSpec.model_validate(container)
        gpus = spec.resources.gpus
        kwargs.setdefault("docker_url", spec.docker.url)
        kwargs.setdefault("network_mode", spec.docker.network_mode)
        super().__init__(
            image=spec.image,
            cpus=spec.resources.cpu,
            mem_limit=docker_memory(spec.resources.memory),
            device_requests=[DeviceRequest(count=gpus, capabilities=[["gpu"]])] if gpus else None,
            shm_size=2**30 if gpus else None,  # DataLoader workers share memory through /dev/shm
            mounts=[_mount(m) for m in spec.docker.mounts],
            auto_remove="force",  # success, failure or kill: no container is left behind
            mount_tmp_dir=False,
            retrieve_output=True,
            retrieve_output_path=RESULT_PATH,
            skip_on_exit_code=NOT_RETRYABLE_EXIT,  # the provider's exit-code hook: turned into a failure below
            labels={"app.kubernetes.io/name": "mlops-ops-trainer", "mlops-ops/pipeline": request.pipeline[:63]},
            **kwargs,
        )
        self.training = request
        self.container_spec = spec
        self.mlflow_conn_id = mlflow_conn_id
        self.iceberg_conn_id = iceberg_conn_id
        self.pickling_library = json  # DockerOperator loads the result file with this (a JSON file, not a pickle)

    def execute(self, context: Context) -> Any:
        from mlops_ops.hooks.iceberg import IcebergCatalogHook
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.training.run import SECRETS_FILE_ENV

        inputs = self.training.inputs(context, self.task_id, self.mlflow_conn_id)
        client_env = MlflowHook(self.mlflow_conn_id).client_env()
        secrets = {**client_env, **IcebergCatalogHook(self.iceberg_conn_id).pyiceberg_env()}
        self.environment = {**self.environment, "MLFLOW_TRACKING_URI": secrets.pop("MLFLOW_TRACKING_URI"),
                            "PYTHONUNBUFFERED": "1", SECRETS_FILE_ENV: f"{SECRETS_DIR}/secrets.json"}  # fmt: skip
        self.command = [*ENTRYPOINT, *self.training.arguments(inputs, RESULT_PATH)]
        if self.user is None:
            self.user = f"{os.getuid()}:{os.getgid()}"
        with secrets_file(secrets) as folder:
            self.mounts = [*self.mounts, _mount(f"{folder}:{SECRETS_DIR}", read_only=True)]
            try:
                output = super().execute(context)
            except BaseException as err:
                closed = self.training.fail_open_runs(self.mlflow_conn_id, inputs)
                if closed:
                    self.log.warning("marked MLflow run(s) %s FAILED; nothing was registered", ", ".join(closed))
                raise_not_retryable_exit(err, f"the trainer's container of {self.image}")
                raise
        return self.training.result(output, f"container of {self.image}")

    def on_kill(self) -> None:
        """Stop the trainer (SIGTERM: it ends its MLflow run as FAILED) and remove its container, within the few
        seconds Airflow's supervisor waits before it SIGKILLs this task (DockerOperator's own ``docker stop`` waits
        10 s)."""
        if self.container is None:
            return
        from docker.errors import APIError
        from requests.exceptions import RequestException

        container = self.container["Id"]
        try:
            self.cli.kill(container, signal="SIGTERM")
            self.cli.wait(container, timeout=KILL_GRACE_S)
        except (APIError, RequestException) as err:
            self.log.info("the trainer did not end within %s s of SIGTERM (%s): removing it", KILL_GRACE_S, err)
        try:
            self.cli.remove_container(container, force=True)
        except APIError as err:
            self.log.info("container %s already gone: %s", container[:12], err)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the features snapshot -> the registered model version; the MLflow run as a run facet."""
        return self.training.lineage(task_instance, self.mlflow_conn_id, self.iceberg_conn_id)
