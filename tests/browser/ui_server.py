"""`make ui` (Airflow standalone with this repo's plugin) on a private Airflow home and DAG folder, for browser tests.

The DAG folder holds one isolated copy of the example churn pipeline (its own topics, lake and model
name, no schedules, so only what the browser triggers runs). Stopped by PID (the process group).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_ops.testing.airflow_services import free_port
from tests.conftest import ROOT


@dataclass
class UiServer:
    url: str
    home: Path
    process: subprocess.Popen[bytes]

    def password(self) -> str:
        data = json.loads((self.home / "simple_auth_manager_passwords.json.generated").read_text())
        return str(data["admin"])

    def log(self, tail: int = 6000) -> str:
        return (self.home / "ui.log").read_text(errors="replace")[-tail:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)


def start_ui(home: Path, dags: Path, env: dict[str, str] | None = None, timeout: float = 300) -> UiServer:
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = ["make", "--no-print-directory", "ui", f"UI_HOME={home}", f"UI_DAGS={dags}"]
    full_env = {**os.environ, **(env or {}), "AIRFLOW_PORT": str(port)}
    for key in ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__DAGS_FOLDER"):
        full_env.pop(key, None)  # `make ui` sets them from the stack and UI_HOME / UI_DAGS
    log = (home / "ui.log").open("ab")
    process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)  # fmt: skip
    server = UiServer(f"http://127.0.0.1:{port}", home, process)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"`make ui` exited with {process.returncode}\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/api/v2/monitor/health", timeout=5) as reply:
                health: Any = json.loads(reply.read())
            if (
                health["scheduler"]["status"] == "healthy"
                and (home / "simple_auth_manager_passwords.json.generated").exists()
            ):
                return server
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(2)
    server.stop()
    raise TimeoutError(f"`make ui` did not come up on {server.url} within {timeout}s\n{server.log()}")
