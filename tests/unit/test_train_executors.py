"""Docker and Kubernetes training executors: no engine or cluster runs here, so the rendered specs are asserted."""

from __future__ import annotations

import json

import pytest

from mlops_ops.operators.train import TrainModelOperator
from mlops_ops.training.executors import ContainerSettings, Resources, docker_memory

FEATURES = "churn.features@4242"
TAGS = {"mlops_ops.pipeline": "churn", "airflow.run_id": "manual__1"}


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(
        {"conn_type": "mlflow", "host": "mlflow.internal", "port": 5000, "schema": "https", "login": "ml",
         "password": "pw"}))  # fmt: skip
    catalog = {"conn_type": "iceberg", "login": "AKIA", "password": "s3cr3t",
               "extra": {"type": "rest", "uri": "https://catalog.internal", "warehouse": "lake"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_DEFAULT", json.dumps(catalog))


def _operator(executor: str, **container: object) -> TrainModelOperator:
    settings = {"image": "registry.example/mlops-ops-trainer:0.1.0", **container}
    return TrainModelOperator(task_id="train", pipeline="churn", model_name="churn", target="churned",
                              task="binary", trainer="torch_mlp", run_in=executor,  # type: ignore[arg-type]
                              container=settings)  # fmt: skip


ARGS = ["--features", FEATURES, "--model", '{"target": "churned", "task": "binary"}', "--trainer", "torch_mlp",
        "--params", '{"epochs": 3}', "--model-name", "churn", "--experiment", "churn",
        "--tags", json.dumps(TAGS, sort_keys=True)]  # fmt: skip


def test_docker_container_spec_with_gpus() -> None:
    op = _operator("docker", resources={"cpu": 4, "memory": "16Gi", "gpus": 2}, network_mode="mlops")
    docker = op.container_operator(FEATURES, {"epochs": 3}, TAGS)
    assert docker.image == "registry.example/mlops-ops-trainer:0.1.0"
    assert docker.command == ["python", "-m", "mlops_ops.training", *ARGS]
    assert docker.environment == {"MLFLOW_TRACKING_URI": "https://mlflow.internal:5000", "PYTHONUNBUFFERED": "1"}
    # credentials only in the private (never rendered) environment
    private = docker._private_environment
    assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= set(private)
    # the catalog reaches the container as pyiceberg's own variables (no Airflow in the training image)
    assert private["PYICEBERG_CATALOG__MLOPS__URI"] == "https://catalog.internal"
    assert private["PYICEBERG_CATALOG__MLOPS__S3__SECRET_ACCESS_KEY"] == "s3cr3t"
    assert private["PYICEBERG_DEFAULT_CATALOG"] == "mlops"
    assert "s3cr3t" not in json.dumps(docker.environment) and "s3cr3t" not in " ".join(docker.command)
    (request,) = docker.device_requests
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]
    assert docker.mem_limit == str(16 * 2**30) and docker.cpus == 4
    assert docker.shm_size == 2**30 and docker.network_mode == "mlops" and docker.auto_remove == "success"


def test_docker_without_gpus_requests_none() -> None:
    docker = _operator("docker").container_operator(FEATURES, {"epochs": 3}, TAGS)
    assert docker.device_requests is None and docker.mem_limit == str(2 * 2**30)


def test_kubernetes_pod_spec() -> None:
    from kubernetes.client import ApiClient

    op = _operator("kubernetes", resources={"cpu": 8, "memory": "32Gi", "gpus": 1}, namespace="ml",
                   node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
                   tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                   image_pull_policy="Always")  # fmt: skip
    pod = ApiClient().sanitize_for_serialization(op.container_operator(FEATURES, {"epochs": 3}, TAGS)
                                                 .build_pod_request_obj(dry_run=True))  # fmt: skip
    assert pod["metadata"]["namespace"] == "ml"
    assert pod["metadata"]["labels"]["mlops-ops/pipeline"] == "churn"
    spec = pod["spec"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    base = next(c for c in spec["containers"] if c["name"] == "base")
    assert base["image"] == "registry.example/mlops-ops-trainer:0.1.0" and base["imagePullPolicy"] == "Always"
    assert base["command"] == ["python", "-m", "mlops_ops.training"]
    assert base["args"] == [*ARGS, "--result-file", "/airflow/xcom/return.json"]
    assert base["resources"] == {"requests": {"cpu": "8", "memory": "32Gi"},
                                 "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "1"}}  # fmt: skip
    assert {e["name"]: e["value"] for e in base["env"]} == {"MLFLOW_TRACKING_URI": "https://mlflow.internal:5000",
                                                            "PYTHONUNBUFFERED": "1"}  # fmt: skip
    assert base["envFrom"] == [{"secretRef": {"name": "mlops-ops-training"}}]
    assert "s3cr3t" not in json.dumps(pod) and "pw" not in json.dumps(base["env"])
    assert any(c["name"] == "airflow-xcom-sidecar" for c in spec["containers"])


def test_missing_container_settings_and_bad_memory() -> None:
    op = TrainModelOperator(task_id="t", pipeline="p", model_name="m", target="y", task="regression",
                            run_in="docker")  # fmt: skip
    with pytest.raises(ValueError, match="needs container settings"):
        op.container_operator(FEATURES, {}, TAGS)
    assert docker_memory("512Mi") == str(512 * 2**20) and docker_memory("1G") == str(10**9)
    with pytest.raises(ValueError, match="not a quantity"):
        docker_memory("lots")
    assert ContainerSettings.of({"image": "i", "resources": {"gpus": 1}}).resources == Resources(gpus=1)
