"""The pytest plugin users get (entry point ``pytest11``): a team's own pipeline tests, run as a separate pytest.

The worked example in ``docs/examples/pipeline_tests`` is copied into a fresh project folder and
run by ``pytest`` in a subprocess, with only the plugin to find the stack (the one this session
started, reused through ``--mlops-home`` and kept with ``--mlops-keep-stack``).
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import ROOT, TEST_HOME

pytest_plugins = ["pytester"]
EXAMPLE = ROOT / "docs" / "examples" / "pipeline_tests"


def test_the_documented_example_passes_with_the_plugin_alone(stack, pytester: pytest.Pytester,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)
    for name in list(os.environ):  # what a user's shell would not have: the plugin sets it up
        if name.startswith(("AIRFLOW", "MLOPS_OPS_", "MLFLOW_", "PYICEBERG_")):
            monkeypatch.delenv(name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", f"--mlops-home={TEST_HOME}",
                                           "--mlops-keep-stack", timeout=900)  # fmt: skip
    result.assert_outcomes(passed=2)
    assert stack.status() and all(s.healthy for s in stack.status())  # the kept stack is still up


def test_a_failing_pipeline_test_fails(stack, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(EXAMPLE / "pipelines", pytester.path / "pipelines")
    pytester.makepyfile(test_wrong="""
        from pathlib import Path

        def test_expects_rows_that_were_never_sent(mlops_runner):
            run = mlops_runner.run(Path(__file__).parent / "pipelines" / "churn_small.yaml")
            assert run.tasks["ingest_kafka"] == "success"
        """)  # fmt: skip
    for name in list(os.environ):
        if name.startswith(("AIRFLOW", "MLOPS_OPS_", "MLFLOW_", "PYICEBERG_")):
            monkeypatch.delenv(name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", f"--mlops-home={TEST_HOME}",
                                           "--mlops-keep-stack", timeout=600)  # fmt: skip
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*assert 'skipped' == 'success'*"])
