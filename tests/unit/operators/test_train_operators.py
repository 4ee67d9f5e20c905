"""The three training operators, one per backend: what each runs and hands over, rendered without an engine.
(The Docker operator runs for real in tests/integration/test_docker_training.py; no Kubernetes cluster runs here,
so the pod is checked against the Kubernetes API schema with kubernetes-validate.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlops_ops.operators.train import TrainModelOperator
from mlops_ops.operators.train_docker import TrainModelDockerOperator, docker_memory, secrets_file
from mlops_ops.operators.train_kubernetes import TrainModelKubernetesOperator
from mlops_ops.operators.training_request import TrainingInputs, TrainingRequest
from mlops_ops.spec import ContainerSpec

FEATURES = "churn.features@4242"
TAGS = {"mlops_ops.pipeline": "churn", "airflow.run_id": "manual__1", "airflow.task_id": "train"}
INPUTS = TrainingInputs(FEATURES, {"epochs": 3}, TAGS)
KUBERNETES_VERSION = "1.33.0"
TRAINING = {"pipeline": "churn", "model_name": "churn", "target": "churned", "task": "binary", "trainer": "torch_mlp"}


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(
        {"conn_type": "mlflow", "host": "mlflow.internal", "port": 5000, "schema": "https", "login": "ml",
         "password": "pw"}))  # fmt: skip
    catalog = {"conn_type": "iceberg", "login": "AKIA", "password": "s3cr3t",
               "extra": {"type": "rest", "uri": "https://catalog.internal", "warehouse": "lake"}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_ICEBERG_DEFAULT", json.dumps(catalog))


def args(result_file: str) -> list[str]:
    return ["--features", FEATURES, "--model", '{"target": "churned", "task": "binary"}', "--trainer", "torch_mlp",
            "--params", '{"epochs": 3}', "--model-name", "churn", "--experiment", "churn",
            "--tags", json.dumps(TAGS, sort_keys=True), "--result-file", result_file]  # fmt: skip


def test_every_backend_is_its_airflow_operator_with_the_same_request() -> None:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.docker.operators.docker import DockerOperator

    container = {"image": "reg/trainer:1"}
    local = TrainModelOperator(task_id="train", training=TRAINING)
    docker = TrainModelDockerOperator(task_id="train", training=TRAINING, container=container)
    pod = TrainModelKubernetesOperator(task_id="train", training=TRAINING, container=container)
    assert isinstance(docker, DockerOperator) and isinstance(pod, KubernetesPodOperator)
    assert local.training == docker.training == pod.training == TrainingRequest(**TRAINING)  # type: ignore[arg-type]
    for op in (local, docker, pod):
        assert "training" in op.template_fields
        assert op.training.arguments(INPUTS, "/r.json") == args("/r.json")


def test_a_replay_runs_what_the_version_recorded_and_moves_no_alias() -> None:
    recorded = TrainingInputs("churn.features@17", {"max_iter": 40}, {**TAGS, "mlops_ops.replay_of": "churn@3"},
                              model={"task": "binary", "target": "churned", "threshold": 0.4}, trainer="sklearn",
                              replay_of="churn@3")  # fmt: skip
    argv = TrainingRequest(**TRAINING).arguments(recorded, "/r.json")  # type: ignore[arg-type]
    given = dict(zip(argv[:-1:2], argv[1::2], strict=False))
    assert given["--features"] == "churn.features@17" and given["--trainer"] == "sklearn"
    assert json.loads(given["--model"]) == {"task": "binary", "target": "churned", "threshold": 0.4}
    assert json.loads(given["--params"]) == {"max_iter": 40} and argv[-1] == "--no-alias"
    assert "--no-alias" not in TrainingRequest(**TRAINING).arguments(INPUTS, "/r.json")  # type: ignore[arg-type]


def test_training_request_fields_are_templated() -> None:
    from airflow.sdk import DAG

    with DAG("d", schedule=None):
        op = TrainModelDockerOperator(task_id="train", container={"image": "i"},
                                      training={**TRAINING, "model_name": "{{ params.m }}"})  # fmt: skip
    op.render_template_fields({"params": {"m": "rendered-model"}})  # type: ignore[arg-type]
    assert op.training.model_name == "rendered-model"


def test_docker_container_with_gpus_and_no_credentials_in_its_configuration() -> None:
    spec = {"image": "reg/trainer:1", "resources": {"cpu": 4, "memory": "16Gi", "gpus": 2},
            "docker": {"network_mode": "host", "url": "unix:///run/d.sock",
                       "mounts": ["/srv/cat:/srv/cat:ro"]}}  # fmt: skip
    op = TrainModelDockerOperator(task_id="train", training=TRAINING, container=spec)
    (request,) = op.device_requests or []
    assert request["Count"] == 2 and request["Capabilities"] == [["gpu"]]
    assert op.mem_limit == str(16 * 2**30) and op.cpus == 4 and op.shm_size == 2**30
    assert op.network_mode == "host" and op.docker_url == "unix:///run/d.sock" and op.auto_remove == "force"
    assert op.retrieve_output and op.retrieve_output_path == "/tmp/mlops-ops-result.json"
    assert [(m["Source"], m["Target"], m["ReadOnly"]) for m in op.mounts] == [("/srv/cat", "/srv/cat", True)]
    assert op._private_environment == {}  # credentials go in a mounted file, not in the container's env
    plain = TrainModelDockerOperator(task_id="train", training=TRAINING, container={"image": "i"})
    assert plain.device_requests is None and plain.mem_limit == str(2 * 2**30) and plain.mounts == []


def test_secrets_file_is_private_and_removed() -> None:
    with secrets_file({"AWS_SECRET_ACCESS_KEY": "s3cr3t"}) as folder:
        path = Path(folder) / "secrets.json"
        assert json.loads(path.read_text()) == {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}
        assert path.stat().st_mode & 0o777 == 0o600 and Path(folder).stat().st_mode & 0o777 == 0o700
    assert not Path(folder).exists()
    with pytest.raises(RuntimeError), secrets_file({"k": "v"}) as folder:
        raise RuntimeError("task killed")
    assert not Path(folder).exists()


def test_entrypoint_reads_the_secrets_file(tmp_path: Path) -> None:
    from mlops_ops.training.run import load_secrets

    (tmp_path / "s.json").write_text('{"AWS_SECRET_ACCESS_KEY": "k", "MLFLOW_TRACKING_PASSWORD": "p"}')
    env = {"MLOPS_OPS_SECRETS_FILE": str(tmp_path / "s.json")}
    assert (
        load_secrets(env) == ["AWS_SECRET_ACCESS_KEY", "MLFLOW_TRACKING_PASSWORD"]
        and env["AWS_SECRET_ACCESS_KEY"] == "k"
    )
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(SystemExit, match="JSON object of strings"):
        load_secrets({"MLOPS_OPS_SECRETS_FILE": str(tmp_path / "bad.json")})
    assert load_secrets({}) == []


PLATFORM: dict[str, Any] = {
    "image": "registry.example/mlops-ops-trainer:0.1.0-cuda",
    "resources": {"cpu": 8, "memory": "32Gi", "gpus": 2, "gpu_type": "NVIDIA-L4"},
    "node_selector": {"pool": "gpu"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "kubernetes": {
        "namespace": "ml-training",
        "service_account": "trainer",
        "image_pull_secrets": ["regcred"],
        "credentials_secret": "churn-training",
        "image_pull_policy": "Always",
    },
}


def _pod(container: dict[str, Any]) -> dict[str, Any]:
    from kubernetes.client import ApiClient

    op = TrainModelKubernetesOperator(task_id="train", training=TRAINING, container=container)
    op.prepare(INPUTS, "https://mlflow.internal:5000")
    pod: dict[str, Any] = ApiClient().sanitize_for_serialization(op.build_pod_request_obj(dry_run=True))
    return pod


def test_pod_from_the_spec_validates_against_the_kubernetes_schema() -> None:
    import kubernetes_validate

    pod = _pod(PLATFORM)
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)  # raises on any schema error
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["namespace"] == "ml-training" and meta["labels"]["mlops-ops/pipeline"] == "churn"
    assert spec["serviceAccountName"] == "trainer" and spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert spec["nodeSelector"] == {"pool": "gpu", "nvidia.com/gpu.product": "NVIDIA-L4"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    base = next(c for c in spec["containers"] if c["name"] == "base")
    assert base["image"] == PLATFORM["image"] and base["imagePullPolicy"] == "Always"
    assert base["command"] == ["python", "-m", "mlops_ops.training"]
    assert base["args"] == args("/airflow/xcom/return.json")
    assert base["resources"] == {"requests": {"cpu": "8", "memory": "32Gi"},
                                 "limits": {"cpu": "8", "memory": "32Gi", "nvidia.com/gpu": "2"}}  # fmt: skip
    assert {e["name"]: e["value"] for e in base["env"]} == {"MLFLOW_TRACKING_URI": "https://mlflow.internal:5000",
                                                            "PYTHONUNBUFFERED": "1"}  # fmt: skip
    assert base["envFrom"] == [{"secretRef": {"name": "churn-training"}}]
    assert "s3cr3t" not in json.dumps(pod) and "pw" not in json.dumps(base["env"])
    assert any(c["name"] == "airflow-xcom-sidecar" for c in spec["containers"])


def test_schema_check_can_fail() -> None:
    import kubernetes_validate

    pod = _pod({"image": "i"})
    kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    pod["spec"]["containers"][0]["resources"] = {"limits": "lots"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)


def test_container_settings_are_checked() -> None:
    from pydantic import ValidationError

    assert docker_memory("512Mi") == str(512 * 2**20) and docker_memory("1G") == str(10**9)
    with pytest.raises(ValueError, match="not a quantity"):
        docker_memory("lots")
    for bad in ({"image": "i", "kubernetes": {"namespace": "Bad_NS"}}, {"image": "i", "docker": {"mounts": ["rel:/x"]}},
                {"image": "i", "tolerations": [{"operator": "Sometimes"}]}, {"image": ""}):  # fmt: skip
        with pytest.raises(ValidationError):
            ContainerSpec.model_validate(bad)


def test_a_request_that_cannot_train_exits_not_retryable_and_fails_without_retries() -> None:
    """An unknown trainer, a missing target or feature column: every retry fails the same way (N20). The entrypoint
    says so by its exit code; every backend turns that code into AirflowFailException, anything else stays
    retryable."""
    import signal

    from mlops_ops._compat import airflow_exception
    from mlops_ops.exceptions import NOT_RETRYABLE_EXIT
    from mlops_ops.operators.training_request import training_failure
    from mlops_ops.training.run import main

    before = signal.getsignal(signal.SIGTERM)
    try:
        code = main(["--features", "p.features@1", "--model", '{"task": "binary", "target": "y"}',
                     "--trainer", "no_such_trainer", "--model-name", "m"])  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, before)
    assert code == NOT_RETRYABLE_EXIT
    failed = training_failure(NOT_RETRYABLE_EXIT, "training subprocess failed (exit code 65)")
    assert isinstance(failed, airflow_exception("AirflowFailException")) and "not retried" in str(failed)
    assert type(training_failure(1, "x")) is RuntimeError and type(training_failure(-9, "x")) is RuntimeError
    request = dict(pipeline="p", model_name="m", target="y", task="binary", features="p.features@1")
    docker = TrainModelDockerOperator(task_id="train", training=request, container=ContainerSpec(image="i:1"))
    kube = TrainModelKubernetesOperator(task_id="train", training=request, container=ContainerSpec(image="i:1"))
    assert list(docker.skip_on_exit_code) == [NOT_RETRYABLE_EXIT] == list(kube.skip_on_exit_code)
