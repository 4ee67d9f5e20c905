"""AirflowServices leaves no process behind when one of Airflow's processes dies at start-up, and stores connections in
the metadata database, not in the environment every process inherits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlops_ops.testing.airflow_services import AirflowServices


def test_a_process_dying_at_start_up_stops_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "airflow"
    fake.write_text('#!/bin/sh\n[ "$1" = scheduler ] && { echo "no scheduler today"; exit 3; }\nexec sleep 120\n')
    fake.chmod(0o755)
    services = AirflowServices(tmp_path / "home", tmp_path, {}, celery_workers=1)
    services.airflow = str(fake)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: None)  # no `airflow db migrate`
    with pytest.raises(RuntimeError, match="airflow scheduler exited with 3"):
        services.start(timeout=60)
    assert set(services.processes) == {"scheduler", "dag-processor", "triggerer", "api-server", "celery-worker1"}
    assert all(p.poll() is not None for p in services.processes.values())  # every other process was stopped
    assert "no scheduler today" in services.logs()


def test_connections_are_stored_in_the_metadata_database_not_in_the_environment(tmp_path: Path) -> None:
    import json
    import sys

    conn = {"conn_type": "mlflow", "host": "127.0.0.1", "port": 5000, "login": "u", "password": "SENTINEL-unit-3c9d",
            "extra": {"region": "eu-west-3"}}  # fmt: skip
    stack_env = {"AIRFLOW_CONN_MLFLOW_DEFAULT": "mlflow://other:other@example.invalid", "AIRFLOW_CONN_KEEP": "http://x"}
    services = AirflowServices(tmp_path / "home", tmp_path, stack_env, connections={"mlflow_default": conn})
    assert "AIRFLOW_CONN_MLFLOW_DEFAULT" not in services.env and services.env["AIRFLOW_CONN_KEEP"] == "http://x"
    services.home.mkdir()
    airflow = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow, "db", "migrate"], env=services.env, check=True, capture_output=True, timeout=300)
    services.import_connections()
    assert [p.name for p in services.home.iterdir() if "connections" in p.name] == []  # the import file is gone
    got = subprocess.run([airflow, "connections", "get", "mlflow_default", "-o", "json"], env=services.env,
                         check=True, capture_output=True, text=True, timeout=120)  # fmt: skip
    (stored,) = json.loads(got.stdout)
    assert (stored["host"], stored["port"], stored["login"]) == ("127.0.0.1", "5000", "u")  # the CLI prints text
    assert stored["password"] == conn["password"] and stored["extra_dejson"] == {"region": "eu-west-3"}
