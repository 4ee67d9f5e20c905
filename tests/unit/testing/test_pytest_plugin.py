"""The pytest plugin (entry point ``pytest11``) loads wherever mlops-ops is installed: a deployment's own DAG tests
included. It must change nothing for a session that does not use its fixtures."""

from __future__ import annotations

import os
import sys

import pytest

pytest_plugins = ["pytester"]

ENV_PREFIXES = ("AIRFLOW", "MLOPS_OPS_", "MLFLOW_", "PYICEBERG_")


def _bare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(ENV_PREFIXES):
            monkeypatch.delenv(name)


def test_a_session_that_uses_no_fixture_sees_no_change(pytester: pytest.Pytester,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    _bare_environment(monkeypatch)
    pytester.makepyfile(test_own_dags="""
        import os, sys

        def test_environment_is_untouched():
            touched = sorted(n for n in os.environ if n.startswith(("AIRFLOW", "MLOPS_OPS_", "MLFLOW_", "PYICEBERG_")))
            assert touched == []
            assert "airflow" not in sys.modules and "mlops_ops.stack" not in sys.modules
        """)  # fmt: skip
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1)
    assert "mlops_ops.testing.pytest_plugin" in pytester.runpytest_subprocess("--trace-config", "-q").stdout.str()


def test_the_fixture_refuses_an_airflow_imported_before_it(pytester: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Airflow reads its home on first import: had it been imported already, the stack's database would be ignored
    and runs would go to ~/airflow. The fixture says so (before starting any service) instead."""
    _bare_environment(monkeypatch)
    monkeypatch.setenv("HOME", str(pytester.path))  # nothing of the developer's ~/airflow is touched either way
    pytester.makepyfile(test_early_import="""
        import airflow

        def test_uses_the_stack(mlops_stack):
            raise AssertionError("the fixture must not start")
        """)  # fmt: skip
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", f"--mlops-home={pytester.path / 'st'}")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*Airflow was imported before the fixture*AIRFLOW_HOME is not set*"])
    assert not (pytester.path / "st").exists()


def test_plugin_module_imports_nothing_heavy() -> None:
    import subprocess

    code = "import mlops_ops.testing.pytest_plugin, sys; print(sorted({m.split('.')[0] for m in sys.modules}))"
    out = subprocess.run([sys.executable, "-"], input=code, capture_output=True, text=True, check=True).stdout
    for heavy in ("airflow", "pyspark", "mlflow", "pandas", "pyiceberg", "confluent_kafka"):
        assert f"'{heavy}'" not in out
