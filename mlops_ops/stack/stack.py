"""Bring the embedded stack up, report on it and take it down: one object, used by the CLI and the tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mlops_ops.exceptions import StackError
from mlops_ops.stack import process
from mlops_ops.stack.config import (
    StackPaths,
    StackSettings,
    default_home,
    load_settings,
    save_settings,
    stack_environment,
)
from mlops_ops.stack.services import ALL_SERVICES, POSTGRES_SERVICES, SERVICES, SPARK_SERVICES, Service


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    what: str
    pid: int | None
    healthy: bool
    url: str
    detail: str = ""


class EmbeddedStack:
    """The real services on 127.0.0.1, with all state under ``home``."""

    def __init__(self, home: Path | None = None, project: Path | None = None) -> None:
        self.paths = StackPaths(home=(home or default_home()).resolve(), project=(project or Path.cwd()).resolve())

    # -- settings and environment -------------------------------------------------
    @property
    def settings(self) -> StackSettings:
        settings = load_settings(self.paths, create=False)
        if settings is None:
            raise StackError(f"no stack under {self.paths.home}: run 'mlops-ops stack up' first")
        return settings

    def environment(self) -> dict[str, str]:
        return stack_environment(self.paths, self.settings)

    # -- lifecycle ---------------------------------------------------------------
    def up(
        self,
        *,
        timeout: float = 180.0,
        airflow_db: bool = True,
        spark_cluster: bool | None = None,
        postgres: bool | None = None,
    ) -> list[ServiceStatus]:
        """Start every service that is not healthy yet and wait for all of them; idempotent. ``spark_cluster``
        turns the Spark standalone master and workers on or off, ``postgres`` Airflow's metadata DB on PostgreSQL
        (both kept in the settings; ``None``: as before)."""
        self.paths.ensure()
        settings = load_settings(self.paths, create=True)
        assert settings is not None
        if spark_cluster is not None and spark_cluster != settings.spark_cluster:
            settings.spark_cluster = spark_cluster
            save_settings(self.paths, settings)
            if not spark_cluster:
                self._stop(SPARK_SERVICES)
        if postgres is not None and postgres != settings.postgres:
            settings.postgres = postgres
            save_settings(self.paths, settings)
            if not postgres:
                self._stop(POSTGRES_SERVICES)
        # every service starts at once, then each is waited for: start-up time is the slowest one's, not the sum
        services = self._services(settings)
        records = {service.name: self._start(service, settings) for service in services}
        deadline = time.monotonic() + timeout
        for service in services:
            self._wait_healthy(service, settings, records[service.name], deadline, timeout)
        if airflow_db:
            self._migrate_airflow_db(settings)
        return self.status()

    def down(self) -> list[str]:
        """Stop exactly the processes this stack started (by PID), newest first."""
        return self._stop(ALL_SERVICES)

    def _stop(self, services: tuple[Service, ...]) -> list[str]:
        stopped = []
        for service in reversed(services):
            pidfile = self.paths.pidfile(service.name)
            record = process.read_pidfile(pidfile)
            if record is not None and process.stop(record):
                stopped.append(service.name)
            pidfile.unlink(missing_ok=True)
        return stopped

    @staticmethod
    def _services(settings: StackSettings | None) -> tuple[Service, ...]:
        if settings is None:
            return SERVICES
        return (*SERVICES, *(SPARK_SERVICES if settings.spark_cluster else ()),
                *(POSTGRES_SERVICES if settings.postgres else ()))  # fmt: skip

    def status(self) -> list[ServiceStatus]:
        settings = load_settings(self.paths, create=False)
        out = []
        for service in self._services(settings):
            record = process.read_pidfile(self.paths.pidfile(service.name))
            proc = record.process() if record else None
            if settings is None or proc is None:
                out.append(ServiceStatus(service.name, service.what, None, False, "", "not running"))
                continue
            healthy, detail = _probe(service, settings)
            out.append(ServiceStatus(service.name, service.what, proc.pid, healthy, service.url(settings), detail))
        return out

    # -- internals ---------------------------------------------------------------
    def _start(self, service: Service, settings: StackSettings) -> process.PidRecord:
        """The service's process: the one running, or a new one."""
        pidfile, logfile = self.paths.pidfile(service.name), self.paths.logfile(service.name)
        record = process.read_pidfile(pidfile)
        if record is None or record.process() is None:
            pidfile.unlink(missing_ok=True)  # left behind by a crash: recover by starting afresh
            self._check_ports_free(service, settings)
            env = {**os.environ, **service.extra_env(self.paths, settings)}
            record = process.spawn(
                service.command(self.paths, settings), pidfile=pidfile, logfile=logfile, env=env, cwd=self.paths.home
            )
        return record

    def _wait_healthy(
        self, service: Service, settings: StackSettings, record: process.PidRecord, deadline: float, timeout: float
    ) -> None:
        logfile = self.paths.logfile(service.name)
        while True:
            if record.process() is None:
                raise StackError(
                    f"service '{service.name}' ({service.what}) exited during start-up; "
                    f"see its log {logfile}:\n{_tail(logfile)}"
                )
            healthy, detail = _probe(service, settings)
            if healthy:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"service '{service.name}' ({service.what}) not healthy after {timeout:.0f}s ({detail}); "
                    f"see its log {logfile}:\n{_tail(logfile)}"
                )
            time.sleep(0.5)

    def _check_ports_free(self, service: Service, settings: StackSettings) -> None:
        prefix = "weed_" if service.name == "s3" else service.name.replace("-", "_")
        busy = [f"{name}={port}" for name, port in settings.ports.items()
                if name.startswith(prefix) and not process.port_is_free(port)]  # fmt: skip
        if busy:
            raise StackError(
                f"service '{service.name}' cannot start: port(s) {', '.join(busy)} on 127.0.0.1 are in use by "
                f"another program; stop it, or set MLOPS_OPS_<NAME>_PORT and delete {self.paths.settings_file}"
            )

    def _migrate_airflow_db(self, settings: StackSettings) -> None:
        env = {**os.environ, **stack_environment(self.paths, settings)}
        marker = self.paths.airflow_home / ".migrated"
        version = f"{_airflow_version()} {'postgres' if settings.postgres else 'sqlite'}"
        if marker.exists() and marker.read_text() == version:
            return
        log = self.paths.logfile("airflow-db")
        with open(log, "ab") as out:
            result = subprocess.run(
                [sys.executable, "-m", "airflow", "db", "migrate"], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        if result.returncode != 0:
            raise StackError(f"'airflow db migrate' failed (exit {result.returncode}); see {log}:\n{_tail(log)}")
        marker.write_text(version)


def _probe(service: Service, settings: StackSettings) -> tuple[bool, str]:
    try:
        service.check(settings)
    except Exception as err:  # noqa: BLE001 - any failure means "not healthy yet"; reported as detail
        return False, f"{type(err).__name__}: {err}".splitlines()[0][:200]
    return True, "healthy"


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow-core")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
