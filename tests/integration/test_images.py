"""Both images of docker/, built here on a real engine from a debootstrap base (no registry is reachable), and
checked from inside: the Airflow image parses dags/ with no import error and lists this provider; the trainer image
has no Airflow and runs the training entrypoint (the Docker training test runs it for real)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.conftest import build_image

PARSE = """
import json, logging, sys
logging.disable(logging.WARNING)
from airflow.dag_processing.dagbag import DagBag
bag = DagBag("/opt/airflow/dags")
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: v[-300:] for k, v in bag.import_errors.items()}}))
"""


def run(image: str, *command: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", "run", "--rm", "-i", "--network", "none", image, *command], input=stdin,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


@pytest.mark.timeout(1800)  # a fresh machine builds the image here (about 3 min; pip downloads every package)
def test_airflow_image_parses_the_dags_and_lists_the_provider(docker_engine: str) -> None:
    from mlops_ops import __version__

    image = build_image("airflow", f"mlops-ops-airflow:{__version__}")
    parsed = run(image, "python", "-", stdin=PARSE)
    assert parsed.returncode == 0, parsed.stderr[-3000:]
    result = json.loads(parsed.stdout.strip().splitlines()[-1])
    assert result["errors"] == {}
    assert {"churn__ingest", "churn__training", "churn__drift"} <= set(result["dags"])
    providers = run(image, "airflow", "providers", "list", "-o", "json")
    assert providers.returncode == 0, providers.stderr[-3000:]
    listed = {p["package_name"]: p["version"] for p in json.loads(providers.stdout[providers.stdout.index("[") :])}
    assert listed.get("mlops-ops") == __version__
    assert "apache-airflow-providers-docker" in listed and "apache-airflow-providers-cncf-kubernetes" in listed
    java = run(image, "java", "-version")
    assert java.returncode == 0 and "17" in java.stderr  # Spark's JVM


def test_trainer_image_has_no_airflow_and_runs_the_entrypoint(trainer_image: str) -> None:
    probe = run(trainer_image, "python", "-c", "import importlib.util as u; print(u.find_spec('airflow') is None)")
    assert probe.stdout.strip() == "True", probe.stderr
    usage = run(trainer_image, "python", "-m", "mlops_ops.training", "--help")
    assert usage.returncode == 0 and "--features" in usage.stdout and "--result-file" in usage.stdout
    missing = run(trainer_image, "python", "-m", "mlops_ops.training", "--model-name", "m")
    assert missing.returncode == 2 and "--features" in missing.stderr  # argparse names what is missing
    user = run(trainer_image, "id", "-u")
    assert user.stdout.strip() == "50000"  # not root by default
