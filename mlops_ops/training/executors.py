"""Container executors of the training entrypoint: a DockerOperator or a KubernetesPodOperator.

Both run ``python -m mlops_ops.training <args>`` in the trainer image (``docker/trainer.Dockerfile``)
with the MLflow URI in the environment. Credentials never go into the rendered (UI-visible)
environment: Docker gets them as ``private_environment``; a pod gets them from the Kubernetes
Secret named in ``credentials_secret`` (``envFrom``). GPUs: a Docker ``DeviceRequest`` for
``count`` GPUs, or the ``nvidia.com/gpu`` limit on the pod.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

ENTRYPOINT = ["python", "-m", "mlops_ops.training"]
XCOM_RESULT = "/airflow/xcom/return.json"  # where KubernetesPodOperator's sidecar reads the result


@dataclass(frozen=True)
class Resources:
    cpu: float = 1.0
    memory: str = "2Gi"
    gpus: int = 0


@dataclass(frozen=True)
class ContainerSettings:
    image: str
    resources: Resources = field(default_factory=Resources)
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[dict[str, str]] = field(default_factory=list)
    namespace: str = "default"
    image_pull_policy: str = "IfNotPresent"
    credentials_secret: str | None = "mlops-ops-training"  # noqa: S105 - the name of a Kubernetes Secret
    docker_url: str | None = None
    network_mode: str | None = None

    @classmethod
    def of(cls, value: ContainerSettings | dict[str, Any]) -> ContainerSettings:
        """From settings or from their JSON form (what a DAG plan holds)."""
        if isinstance(value, ContainerSettings):
            return value
        data = dict(value)
        return cls(**{**data, "resources": Resources(**data.get("resources", {}))})


def docker_memory(memory: str) -> str:
    """Kubernetes quantities (``2Gi``, ``512Mi``) as Docker sizes (``2g``, ``512m``)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|K|M|G|T)?", memory)
    if not match:
        raise ValueError(f"memory '{memory}' is not a quantity like 512Mi or 2Gi")
    number, unit = match.groups()
    if unit is None:
        return number
    bytes_per = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    return str(int(float(number) * bytes_per[unit]))


def docker_operator(task_id: str, settings: ContainerSettings, args: list[str], env: dict[str, str],
                    secret_env: dict[str, str]) -> Any:  # fmt: skip
    from airflow.providers.docker.operators.docker import DockerOperator
    from docker.types import DeviceRequest

    gpus = settings.resources.gpus
    return DockerOperator(
        task_id=task_id,
        image=settings.image,
        command=[*ENTRYPOINT, *args],
        environment=dict(env),
        private_environment=dict(secret_env),
        cpus=settings.resources.cpu,
        mem_limit=docker_memory(settings.resources.memory),
        device_requests=[DeviceRequest(count=gpus, capabilities=[["gpu"]])] if gpus else None,
        shm_size=2**30 if gpus else None,  # DataLoader workers share memory through /dev/shm
        docker_url=settings.docker_url,
        network_mode=settings.network_mode,
        auto_remove="success",
        mount_tmp_dir=False,
        do_xcom_push=True,
    )


def pod_operator(task_id: str, settings: ContainerSettings, args: list[str], env: dict[str, str],
                 labels: dict[str, str]) -> Any:  # fmt: skip
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from kubernetes.client import models as k8s

    quantity = {"cpu": str(settings.resources.cpu), "memory": settings.resources.memory}
    limits = dict(quantity)
    if settings.resources.gpus:
        limits["nvidia.com/gpu"] = str(settings.resources.gpus)
    env_from = (
        [k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=settings.credentials_secret))]
        if settings.credentials_secret
        else None
    )
    return KubernetesPodOperator(
        task_id=task_id,
        name=f"train-{task_id}".replace("_", "-"),
        namespace=settings.namespace,
        image=settings.image,
        image_pull_policy=settings.image_pull_policy,
        cmds=list(ENTRYPOINT),
        arguments=[*args, "--result-file", XCOM_RESULT],
        env_vars=dict(env),
        env_from=env_from,
        container_resources=k8s.V1ResourceRequirements(requests=quantity, limits=limits),
        node_selector=dict(settings.node_selector) or None,
        tolerations=[k8s.V1Toleration(**t) for t in settings.tolerations] or None,
        labels={"app.kubernetes.io/name": "mlops-ops-trainer", **labels},
        get_logs=True,
        do_xcom_push=True,
        on_finish_action="delete_succeeded_pod",
    )
