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

Airflow reads ``AIRFLOW_HOME`` and its database URL on first import, so ``pytest_configure``
points them at the test stack unless they are set already. Nothing heavy is imported until a
fixture is used.
"""

from __future__ import annotations

import os
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


def pytest_configure(config: pytest.Config) -> None:
    home = _home(config)
    os.environ.setdefault("MLOPS_OPS_HOME", str(home))
    if "AIRFLOW_HOME" not in os.environ:
        os.environ["AIRFLOW_HOME"] = str(home / "airflow")
        db = f"sqlite:///{home / 'airflow' / 'airflow.db'}?timeout=60"  # writers wait for SQLite's lock
        os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", db)
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    config.addinivalue_line("markers", "mlops_stack: the test uses the embedded mlops-ops stack")


@pytest.fixture(scope="session")
def mlops_stack(request: pytest.FixtureRequest) -> Iterator[EmbeddedStack]:
    """The embedded stack, up for the whole session, with its environment exported."""
    from mlops_ops.stack import EmbeddedStack

    stack = EmbeddedStack(home=Path(os.environ["MLOPS_OPS_HOME"]), project=request.config.rootpath)
    stack.up(timeout=180)
    saved = dict(os.environ)
    os.environ.update(stack.environment())
    try:
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if not request.config.getoption("mlops_keep_stack"):
            stack.down()


@pytest.fixture
def mlops_runner(mlops_stack: EmbeddedStack, tmp_path: Path, request: pytest.FixtureRequest) -> PipelineRunner:
    """A ``PipelineRunner`` whose lakes and DAG folders live under this test's ``tmp_path``."""
    return PipelineRunner(mlops_stack, tmp_path, project=request.config.rootpath)
