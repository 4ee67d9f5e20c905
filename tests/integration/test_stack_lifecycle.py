"""`mlops-ops stack up/status/down` on a second, private stack: idempotence, crash recovery, no orphans."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from mlops_ops.stack import EmbeddedStack
from mlops_ops.stack.services import s3_client
from tests.conftest import ROOT


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops_ops.cli.main", "stack", *args, "--home", str(home), "--project", str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_up_status_crash_recovery_down(tmp_path: Path) -> None:
    home = tmp_path / "stack"
    up = _cli(home, "up")
    assert up.returncode == 0, up.stderr
    stack = EmbeddedStack(home=home, project=ROOT)
    first = {s.name: s.pid for s in stack.status()}
    assert all(s.healthy for s in stack.status())
    status = _cli(home, "status")
    assert status.returncode == 0 and status.stdout.count("healthy") == 4

    # every listening socket of every service is on loopback
    for pid in first.values():
        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        for proc in family:
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    assert conn.laddr.ip in ("127.0.0.1", "::1"), (proc.name(), conn.laddr)

    # S3 needs the stack's credentials
    settings = stack.settings
    settings_bad = type(settings)(ports=settings.ports, s3_access_key="nobody", s3_secret_key="wrong")
    with pytest.raises(Exception, match=r"AccessDenied|InvalidAccessKeyId|SignatureDoesNotMatch|403"):
        s3_client(settings_bad).list_objects_v2(Bucket="mlops-lake")

    # idempotent: a second `up` starts nothing new
    assert _cli(home, "up").returncode == 0
    assert {s.name: s.pid for s in stack.status()} == first

    # a crashed service is reported and a second `up` recovers it
    os.kill(first["kafka"], signal.SIGKILL)
    psutil.Process(first["kafka"]).wait(10) if psutil.pid_exists(first["kafka"]) else None
    status = _cli(home, "status")
    assert status.returncode == 1 and re.search(r"^kafka\s+DOWN", status.stdout, re.MULTILINE)
    assert _cli(home, "up").returncode == 0
    recovered = {s.name: s.pid for s in stack.status()}
    assert recovered["kafka"] != first["kafka"] and recovered["s3"] == first["s3"]

    # env exports what Airflow needs
    env = _cli(home, "env").stdout
    for key in ("AIRFLOW_CONN_KAFKA_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_MLFLOW_DEFAULT",
                "AIRFLOW_CONN_SPARK_DEFAULT", "AIRFLOW_HOME", "MLFLOW_TRACKING_URI"):  # fmt: skip
        assert f"export {key}=" in env

    # down stops exactly what it started; nothing is left
    pids = set(recovered.values())
    children = {c.pid for p in pids for c in psutil.Process(p).children(recursive=True)}
    down = _cli(home, "down")
    assert down.returncode == 0 and "kafka" in down.stdout
    assert not [p for p in pids | children if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    status = _cli(home, "status")
    assert status.returncode == 1 and status.stdout.count("DOWN") == 4
    assert not list((home / "pids").iterdir())


def test_failing_service_names_itself_and_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from mlops_ops.exceptions import StackError

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    monkeypatch.setenv("MLOPS_OPS_KAFKA_PORT", str(port))
    stack = EmbeddedStack(home=tmp_path / "s", project=ROOT)
    try:
        with pytest.raises(StackError, match=rf"service 'kafka' cannot start: port\(s\) kafka={port}"):
            stack.up(timeout=60, airflow_db=False)
    finally:
        stack.down()
        blocker.close()
