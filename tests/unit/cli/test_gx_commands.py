"""`mlops-ops gx init` makes a context where a project has none; `gx scaffold` explains what is missing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mlops_ops.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


def test_init_then_scaffold_a_suite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "great_expectations"
    assert main(["gx", "scaffold", "churn_raw", "--context-root", str(root)]) == 2
    assert "mlops-ops gx init" in capsys.readouterr().err
    assert main(["gx", "init", "--context-root", str(root)]) == 0
    assert (root / "great_expectations.yml").is_file() and "new Great Expectations context" in capsys.readouterr().out
    assert main(["gx", "scaffold", "nope", "--context-root", str(root)]) == 2
    assert "no expectation suite 'nope'" in capsys.readouterr().err
    suite = json.loads((ROOT / "great_expectations" / "expectations" / "churn_raw.json").read_text())
    shutil.copy(ROOT / "great_expectations" / "expectations" / "churn_raw.json", root / "expectations")
    assert main(["gx", "scaffold", suite["name"], "--context-root", str(root)]) == 0
    assert {p.name for p in (root / "checkpoints").iterdir()} >= {"churn_raw.pandas.json", "churn_raw.spark.json"}
    assert main(["gx", "init", "--context-root", str(root)]) == 0  # again: the existing context is kept
    assert "existing" in capsys.readouterr().out
