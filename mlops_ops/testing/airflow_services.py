"""Airflow's own processes where scheduling itself is checked: scheduler, dag-processor, triggerer, API server (and
Celery workers with the CeleryExecutor).

Each runs as ``airflow <command>`` in its own process group with a private AIRFLOW_HOME, a metadata database (its
own SQLite file by default, or ``database_url``: the stack's PostgreSQL), the embedded stack's connections, and the
DAG folder the caller gives; ``stop`` terminates them by PID. ``connections`` are stored in the metadata database (as
a deployment keeps them) rather than passed as ``AIRFLOW_CONN_*`` variables, which every process would inherit.
Logs land in ``<home>/<name>.log`` for failure reports. Used by ``make demo``, this project's tests and benchmarks
and the ``mlops_airflow`` pytest fixture.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from mlops_ops.executors import WARM_LOCAL_EXECUTOR

COMMANDS = ("scheduler", "dag-processor", "triggerer", "api-server")


def exit_handled(scheduler_log: str, dag_id: str, task_id: str, run_id: str) -> bool:
    """Whether a scheduler's log shows it handled the executor's report that this task's process exited (its
    ``TaskInstance Finished`` line). A task that defers or waits for a person (HITL) exits its worker process; an
    answer that resumes the task before the scheduler handled that exit races Airflow 3.3.2's scheduler, which then
    takes the resumed task for one killed externally and fails it (docs/approval.md)."""
    return f"TaskInstance Finished: dag_id={dag_id}, task_id={task_id}, run_id={run_id}," in scheduler_log


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AirflowServices:
    def __init__(
        self,
        home: Path,
        dags: Path,
        stack_env: dict[str, str],
        extra_env: dict[str, str] | None = None,
        python_path: list[Path] | None = None,
        *,
        database_url: str | None = None,
        executor: str = WARM_LOCAL_EXECUTOR,
        celery_workers: int = 0,
        connections: dict[str, dict[str, Any]] | None = None,
        migrate: bool = True,
    ) -> None:
        """``migrate=False``: ``database_url`` is already at this Airflow's schema (a copy of a migrated template
        database, as this project's tests make once per session), so ``start`` skips ``airflow db migrate``."""
        self.home = home
        self.migrate = migrate
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            **stack_env,
            "AIRFLOW_HOME": str(home),
            # a scheduler, triggerer, API server and tasks all write: writers wait up to 60 s for SQLite's lock
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url or f"sqlite:///{home / 'airflow.db'}?timeout=60",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            "PYTHONPATH": os.pathsep.join(str(p) for p in [*(python_path or []), dags]),
            **(extra_env or {}),
        }
        self.connections = connections or {}
        for conn_id in self.connections:  # a variable would win over the database: the stored one is what runs
            self.env.pop(f"AIRFLOW_CONN_{conn_id.upper()}", None)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.airflow = str(Path(sys.executable).parent / "airflow")
        self.commands: dict[str, list[str]] = {c: [c] for c in COMMANDS}
        for i in range(1, celery_workers + 1):  # each its own queue consumer, named so its tasks show where they ran
            self.commands[f"celery-worker{i}"] = ["celery", "worker", "--concurrency", "1",
                                                  "--celery-hostname", f"worker{i}@%h"]  # fmt: skip

    def start(self, timeout: float = 180) -> None:
        from mlops_ops.stack.config import private_folder

        private_folder(self.home)  # Airflow's database, JWT secret and passwords file
        self._write_config()
        if self.migrate:
            subprocess.run([self.airflow, "db", "migrate"], env=self.env, check=True, capture_output=True, timeout=300)
        self.import_connections()
        for name, args in self.commands.items():
            log = (self.home / f"{name}.log").open("ab")
            self.processes[name] = subprocess.Popen(
                [self.airflow, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self._wait_healthy(timeout)
        except BaseException:
            self.stop()  # a process that died at start-up: stop the others, leave nothing behind
            raise

    def _write_config(self) -> None:
        """``airflow.cfg`` with the secrets every process of the deployment must share (Fernet key, the JWT secret
        the execution API signs task tokens with, the API's session key), written once before any Airflow process
        starts. Without it each process that finds no file writes one with secrets of its own: daemons started
        together then disagree ("Signature verification failed" on every task's first call). Everything else
        keeps Airflow's defaults and this deployment's environment."""
        import base64
        import secrets

        path = self.home / "airflow.cfg"
        if path.exists():
            return
        fernet = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        text = (f"[core]\nfernet_key = {fernet}\n\n[api_auth]\njwt_secret = {secrets.token_urlsafe(32)}\n\n"
                f"[api]\nsecret_key = {secrets.token_urlsafe(32)}\n")  # fmt: skip
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(text)

    def import_connections(self) -> None:
        """Store ``connections`` in the metadata database with ``airflow connections import`` (encrypted with the
        Fernet key when one is set), from a 0600 file that is removed whatever happens."""
        if not self.connections:
            return
        path = self.home / "connections-import.json"
        stored = {
            conn_id: {**conn, "extra": json.dumps(conn["extra"])} if isinstance(conn.get("extra"), dict) else conn
            for conn_id, conn in self.connections.items()
        }
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                json.dump(stored, out)
            done = subprocess.run([self.airflow, "connections", "import", "--overwrite", str(path)], env=self.env,
                                  capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        finally:
            path.unlink(missing_ok=True)
        if done.returncode != 0:
            raise RuntimeError(f"airflow connections import failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")

    def _wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/api/v2/monitor/health")[0] == 200:
                    return
            except OSError:
                pass
            self._check_alive()
            time.sleep(1)
        raise TimeoutError(f"Airflow API did not answer on {self.url} within {timeout}s\n{self.logs()}")

    def _check_alive(self) -> None:
        for command, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"airflow {command} exited with {process.returncode}\n{self.logs()}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,  # noqa: S310 (http://127.0.0.1 only)
                                     headers={"Content-Type": "application/json"})  # fmt: skip
        try:
            # longer than SQLite's 60 s lock wait: under load the API server waits for the scheduler's writes
            with urllib.request.urlopen(req, timeout=120) as reply:  # noqa: S310
                return reply.status, json.loads(reply.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def wait_for(self, what: str, check: Any, timeout: float = 300, every: float = 1.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            self._check_alive()
            time.sleep(every)
        raise TimeoutError(f"timed out waiting for {what}\n{self.logs()}")

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after&limit=100")
        return list(body["dag_runs"]) if status == 200 else []

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str]:
        from urllib.parse import quote

        _, body = self.request("GET", f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")
        return {t["task_id"]: t["state"] for t in body["task_instances"]}

    def asset_events_handled(self, dag_id: str) -> bool:
        """No asset event waits for ``dag_id``: the scheduler has made a run of every event queued for it (an event
        and its queue entry are written in one transaction, so every event already recorded has been acted on)."""
        status, body = self.request("GET", f"/api/v2/dags/{dag_id}/assets/queuedEvents")
        return status == 200 and body["total_entries"] == 0

    def exit_handled(self, dag_id: str, task_id: str, run_id: str) -> bool:
        """:func:`exit_handled` on this deployment's scheduler log."""
        log = self.home / "scheduler.log"
        return log.exists() and exit_handled(log.read_text(errors="replace"), dag_id, task_id, run_id)

    def logs(self, tail: int = 4000) -> str:
        out = []
        for name in self.commands:
            path = self.home / f"{name}.log"
            if path.exists():
                out.append(f"--- {name} ---\n" + path.read_text(errors="replace")[-tail:])
        return "\n".join(out)
