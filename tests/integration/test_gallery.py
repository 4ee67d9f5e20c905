"""The gallery (docs/examples/gallery): regression from S3 Parquet with an sklearn estimator by class path,
multi-class string labels from Kafka with torch, binary string labels with a tuned threshold. Run as a user runs
it: copied into a fresh project, ``pytest`` in a subprocess with only the mlops-ops plugin (and the stack this
session started). Each ends with a champion a plain ``mlflow.pyfunc`` consumer predicts with on raw columns and
a drift check on shifted data; the run's log has no error-level line."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.conftest import ROOT, TEST_HOME

pytest_plugins = ["pytester"]
GALLERY = ROOT / "docs" / "examples" / "gallery"


def test_the_gallery_runs_end_to_end_through_the_plugin(stack, pytester: pytest.Pytester,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    shutil.copytree(GALLERY, pytester.path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("uncommitted"))
    for name in list(os.environ):  # what a user's shell would not have: the plugin sets it up
        if name.startswith(("AIRFLOW", "MLOPS_OPS_", "MLFLOW_", "PYICEBERG_", "PYTHONPATH")):
            monkeypatch.delenv(name)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-s", f"--mlops-home={TEST_HOME}",
                                           "--mlops-keep-stack", timeout=1500)  # fmt: skip
    result.assert_outcomes(passed=7)
    errors = [line for line in result.outlines if "[error" in line]
    assert errors == [], errors[:5]
