"""Test-session setup shared by unit and integration tests.

Airflow reads AIRFLOW_HOME and its database URL when it is first imported, so they are
set here, before any test module imports Airflow: the test session uses its own embedded
stack under ``.mlops/test`` (same code as ``mlops-ops stack up``), separate from the
developer's ``.mlops``. Under pytest-xdist (``make test`` runs two workers) each worker has
its own stack, under ``.mlops/test-gw0``, ``.mlops/test-gw1``: every service picks free ports.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... in an xdist worker; "" without xdist
_home = Path(os.environ.get("MLOPS_OPS_TEST_HOME", ROOT / ".mlops" / "test"))
TEST_HOME = (_home.with_name(f"{_home.name}-{WORKER}") if WORKER else _home).resolve()

os.environ["MLOPS_OPS_HOME"] = str(TEST_HOME)
os.environ["AIRFLOW_HOME"] = str(TEST_HOME / "airflow")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{TEST_HOME / 'airflow' / 'airflow.db'}?timeout=60"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
# trusted for spec callables: transforms in tests/ (tests.integration.feature_transforms) and the placeholder modules
# the unit tests name without importing them (m, pkg, team)
os.environ["AIRFLOW__MLOPS_OPS__ALLOWED_CALLABLE_MODULES"] = "tests, m, pkg, team"
os.environ.pop("MLFLOW_TRACKING_URI", None)
(TEST_HOME / "airflow").mkdir(parents=True, exist_ok=True)


# With xdist (`make test`: -n 2 --dist loadscope --no-loadscope-reorder) a worker takes whole modules, so a module's
# fixtures (its Airflow deployment) are set up once; modules that share a machine-wide resource go to one worker.
# (xdist's own `loadgroup` does not group under pytest 9.2: it renames items through an attribute pytest no longer
# reads; the scheduler below groups by module instead.)
SHARED_GROUPS = {  # the Docker engine (one per machine, ~/.cache/mlops-ops/docker) and the images built in it
    "tests/integration/test_docker_training.py": "docker",
    "tests/integration/test_images.py": "docker",
}
# The longest modules first (pytest --durations on CI's 2 cores, docs/testing.md), so that the two workers finish
# together instead of one running a long module alone at the end. The rest keep pytest's order.
LONGEST_FIRST = (
    "tests/integration/test_docker_training.py",  # with test_images: the Docker group builds the images first
    "tests/integration/test_images.py",
    "tests/integration/test_drift_backfill.py",
    "tests/integration/test_approval.py",
    "tests/reliability/test_airflow_faults.py",
    "tests/reliability/test_service_faults.py",
    "tests/integration/test_event_scheduling.py",
    "tests/browser/test_airflow_ui.py",
    "tests/integration/test_gallery.py",
    "tests/integration/test_faults.py",
    "tests/packaging/test_wheel.py",
    "tests/integration/test_pytest_plugin.py",
    "tests/integration/test_celery.py",
    "tests/integration/test_openlineage.py",
    "tests/unit/test_extras.py",
)


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not WORKER:  # one process (or xdist's controller, which runs no test): pytest's own order
        return
    rank = {module: index for index, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(module_of(item.nodeid), len(rank)))  # stable: a module's tests keep order


@pytest.hookimpl(optionalhook=True)  # an xdist hook: pytest without xdist (the compatibility venvs) ignores it
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        """xdist's ``loadscope`` with a module's group (``SHARED_GROUPS``) as the unit a worker takes whole."""

        def _split_scope(self, nodeid: str) -> str:
            module = module_of(nodeid)
            return SHARED_GROUPS.get(module, module)

    return ModuleScheduling(config, log)
