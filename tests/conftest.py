"""Test-session setup shared by unit and integration tests.

Airflow reads AIRFLOW_HOME and its database URL when it is first imported, so they are
set here, before any test module imports Airflow: the test session uses its own embedded
stack under ``.mlops/test`` (same code as ``mlops-ops stack up``), separate from the
developer's ``.mlops``.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEST_HOME = Path(os.environ.get("MLOPS_OPS_TEST_HOME", ROOT / ".mlops" / "test")).resolve()

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
