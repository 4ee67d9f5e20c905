"""pytest plugin (entry point ``pytest11``): test your own pipelines the way mlops-ops tests its examples.

Fixtures:

* ``mlops_stack`` (session): the embedded stack (Kafka, S3, MLflow) started from the package's own
  code under ``<rootdir>/.mlops/pytest`` (``--mlops-home``), its environment exported, stopped by
  PID at the end unless ``--mlops-keep-stack``.
* ``mlops_runner``: runs one of your pipeline specs end to end on small data you give it,
  isolated from other tests (its own lake, topics, S3 prefix and model name; a copy of the project's
  ``great_expectations/`` context), and returns the run's task states, XComs and champion. A spec's
  relative ``sql:`` file is found beside the spec; the trainer subprocess imports what the test can
  (the project's own trainer and transform modules) without PYTHONPATH.

The plugin changes nothing unless a test asks for one of its fixtures: no environment variable is set at
configure time (a deployment's own DAG tests run exactly as without it). ``mlops_stack`` exports the stack's
environment for its session and, unless ``AIRFLOW_HOME`` is set already, points Airflow's home and a SQLite
database into the stack folder; Airflow reads both when it is first imported, so a test session that imported
Airflow before the fixture ran (a test module importing it at top level) without ``AIRFLOW_HOME`` gets an error
saying so instead of writing to ``~/airflow``. Nothing heavy is imported until a fixture is used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlops_ops.testing.runner import PipelineRunner

if TYPE_CHECKING:
    from mlops_ops.stack import EmbeddedStack


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mlops-ops", "mlops-ops embedded stack")
    group.addoption(
        "--mlops-home",
        default=None,
        help="folder for the test stack's state (default: $MLOPS_OPS_HOME or <rootdir>/.mlops/pytest)",
    )
    group.addoption("--mlops-keep-stack", action="store_true", default=False,
                    help="leave the embedded stack running after the session (faster reruns)")  # fmt: skip


def _home(config: pytest.Config) -> Path:
    chosen = config.getoption("mlops_home") or os.environ.get("MLOPS_OPS_HOME")
    return Path(chosen or config.rootpath / ".mlops" / "pytest").resolve()


def _airflow_environment(home: Path) -> dict[str, str]:
    """Where Airflow keeps its home and database for the test stack, unless the session chose already."""
    if "AIRFLOW_HOME" in os.environ:
        return {}
    if "airflow" in sys.modules:
        raise RuntimeError(
            "mlops_stack: Airflow was imported before the fixture could point it at the test stack "
            f"({home / 'airflow'}), and AIRFLOW_HOME is not set, so Airflow is using ~/airflow. Set AIRFLOW_HOME "
            "(and AIRFLOW__DATABASE__SQL_ALCHEMY_CONN) for the test session, or import Airflow inside the tests."
        )
    db = f"sqlite:///{home / 'airflow' / 'airflow.db'}?timeout=60"  # writers wait for SQLite's lock
    return {"AIRFLOW_HOME": str(home / "airflow"), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}  # fmt: skip


@pytest.fixture(scope="session")
def mlops_stack(request: pytest.FixtureRequest) -> Iterator[EmbeddedStack]:
    """The embedded stack, up for the whole session, with its environment exported (restored at the end)."""
    from mlops_ops.stack import EmbeddedStack

    home = _home(request.config)
    saved = dict(os.environ)
    os.environ["MLOPS_OPS_HOME"] = str(home)
    os.environ.update(_airflow_environment(home))
    stack = EmbeddedStack(home=home, project=request.config.rootpath)
    started = False
    try:
        stack.up(timeout=180)
        started = True
        os.environ.update(stack.environment())
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if started and not request.config.getoption("mlops_keep_stack"):
            from mlops_ops.hooks.spark import stop_connect_sessions

            stop_connect_sessions()  # else pyspark's exit handler retries against the stopped server for minutes
            stack.down()


@pytest.fixture
def mlops_runner(mlops_stack: EmbeddedStack, tmp_path: Path, request: pytest.FixtureRequest) -> PipelineRunner:
    """A ``PipelineRunner`` whose lakes and DAG folders live under this test's ``tmp_path``."""
    return PipelineRunner(mlops_stack, tmp_path, project=request.config.rootpath)
