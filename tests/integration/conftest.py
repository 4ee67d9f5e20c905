"""The embedded stack as a session fixture: real Kafka (Tansu), S3 (SeaweedFS) and MLflow.

``stack`` is the ``mlops_stack`` fixture of the package's own pytest plugin (the one users get),
under ``.mlops/test`` (``MLOPS_OPS_HOME``, set in ``tests/conftest.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mlops_ops.stack import EmbeddedStack
from tests.conftest import ROOT


@pytest.fixture(scope="session")
def stack(mlops_stack: EmbeddedStack) -> EmbeddedStack:
    return mlops_stack


@pytest.fixture
def bootstrap(stack: EmbeddedStack) -> str:
    return f"127.0.0.1:{stack.settings.ports['kafka']}"


@pytest.fixture
def topic(bootstrap: str) -> str:
    """A fresh topic with 3 partitions."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"t-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=3)])[name].result(10)
    return name


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[str]:
    """A real Docker engine (docker/engine.sh: apt's docker.io, no bridge/iptables). It fails, never skips, when the
    engine cannot start: the Docker tests are part of CI. Its state (images and their layers) lives in a cache of
    this machine, not in the checkout (``$MLOPS_OPS_DOCKER_STATE``, default ``~/.cache/mlops-ops/docker``): a fresh
    clone on the same machine reuses the base image and every cached layer, so only what changed is rebuilt."""
    state = Path(os.environ.get("MLOPS_OPS_DOCKER_STATE") or Path.home() / ".cache" / "mlops-ops" / "docker")
    was_running = (state / "docker.pid").exists() and _alive(state / "docker.pid")
    out = subprocess.run([str(ROOT / "docker" / "engine.sh"), "start", str(state)], capture_output=True, text=True,
                         timeout=600, check=False)  # fmt: skip
    if out.returncode != 0:
        pytest.fail(f"the Docker engine did not start (docker/engine.sh): {out.stderr[-2000:]}")
    os.environ["DOCKER_HOST"] = out.stdout.strip().splitlines()[-1]
    try:
        yield os.environ["DOCKER_HOST"]
    finally:
        if not was_running:
            subprocess.run([str(ROOT / "docker" / "engine.sh"), "stop", str(state)], check=False, timeout=60)


def _alive(pidfile: Path) -> bool:
    try:
        os.kill(int(pidfile.read_text().strip()), 0)
    except (OSError, ValueError):
        return False
    return True


def build_image(kind: str, tag: str) -> str:
    """docker/build.sh on the Debian base made by docker/base-image.sh (no registry is reachable here)."""
    base = subprocess.run([str(ROOT / "docker" / "base-image.sh")], capture_output=True, text=True, timeout=900,
                          check=False)  # fmt: skip
    assert base.returncode == 0, base.stderr[-3000:]
    env = {**os.environ, "TORCH_INDEX": ""}  # torch: the CPU wheel on this disk (docker/wheels), not PyPI's CUDA build
    built = subprocess.run([str(ROOT / "docker" / "build.sh"), kind, tag, base.stdout.split()[-1]], env=env,
                           capture_output=True, text=True, timeout=1800, check=False)  # fmt: skip
    assert built.returncode == 0, f"docker/build.sh {kind} failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    return tag


@pytest.fixture(scope="session")
def trainer_image(docker_engine: str) -> str:
    from mlops_ops import __version__

    return build_image("trainer", f"mlops-ops-trainer:{__version__}")  # the spec's default image


TEMPLATE_DATABASE = "airflow_template"
_migrated: set[str] = set()  # the templates this session migrated: a PostgreSQL server, or a template file


def _migrate(url: str, home: Path) -> None:
    """``airflow db migrate`` on ``url``: once per session for each template, never per module."""
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
    done = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, f"airflow db migrate failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"


def fresh_database(stack: Any) -> str:
    """A new PostgreSQL database on the stack's server for one Airflow deployment: modules that drive a scheduler
    share no runs, queued tasks or DAGs (a run queued when one module stopped would start in the next). It is a copy
    (``CREATE DATABASE ... TEMPLATE``) of one database migrated once per session, so no module pays a migration;
    pass ``migrate=False`` to ``AirflowServices``."""
    import psycopg2

    url = stack.environment()["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.startswith("postgresql"), "fresh_database needs the stack's PostgreSQL (the postgres_stack fixture)"
    server, name = url.rsplit("/", 1)[0], f"airflow_{uuid.uuid4().hex[:10]}"

    def execute(*statements: str) -> None:
        connection = psycopg2.connect(url.replace("postgresql+psycopg2://", "postgresql://"))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
        finally:
            connection.close()

    if server not in _migrated:  # a template left by an earlier session may be stale or half-migrated: anew
        execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DATABASE}", f"CREATE DATABASE {TEMPLATE_DATABASE}")
        _migrate(f"{server}/{TEMPLATE_DATABASE}", stack.paths.home / "airflow")
        _migrated.add(server)
    execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DATABASE}")
    return f"{server}/{name}"


def fresh_sqlite(stack: Any, home: Path) -> str:
    """A migrated SQLite database for the deployment whose home is ``home``: a copy of one file migrated once per
    session (pass ``migrate=False`` to ``AirflowServices``)."""
    import shutil

    from mlops_ops.stack.config import private_folder

    template = stack.paths.home / "airflow-template" / "airflow.db"
    if str(template) not in _migrated:
        private_folder(template.parent)
        template.unlink(missing_ok=True)
        _migrate(f"sqlite:///{template}", template.parent)
        _migrated.add(str(template))
    private_folder(home)
    shutil.copyfile(template, home / "airflow.db")
    return f"sqlite:///{home / 'airflow.db'}?timeout=60"


@pytest.fixture(scope="module")
def postgres_stack(stack) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The test stack with Airflow's metadata DB on its PostgreSQL for this module: the CeleryExecutor does not run
    on SQLite, and suites driven by the real scheduler avoid SQLite's one-writer lock. The server starts once per
    session (the stack's teardown stops it): at the module's end only the setting goes back to SQLite, so later
    modules' ``stack.environment()`` name SQLite as before, and the next PostgreSQL module finds the server up."""
    from mlops_ops.stack.config import save_settings

    stack.up(postgres=True, airflow_db=False)
    try:
        yield stack
    finally:
        settings = stack.settings
        settings.postgres = False
        save_settings(stack.paths, settings)
