from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_ops.exceptions import SpecError
from mlops_ops.factories import plan_cache

SPEC = "source: {kafka: {topics: [a]}}\n"
PROBE = """
import json, sys
from mlops_ops.factories.loader import load_pipelines
loaded = load_pipelines({}, sys.argv[1])
print(json.dumps({"loaded": loaded, "spec_imported": "mlops_ops.spec" in sys.modules}))
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("MLOPS_OPS_PLAN_CACHE", str(folder))
    return folder


def _fresh_parse(folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(folder)], env=dict(os.environ), capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_unchanged_spec_is_built_without_validating_again(tmp_path: Path, cache: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "alpha.yaml").write_text(SPEC)
    first = _fresh_parse(specs)
    assert first == {"loaded": ["alpha__ingest"], "spec_imported": True}
    assert len(list(cache.glob("*.json"))) == 1
    second = _fresh_parse(specs)
    assert second == {"loaded": ["alpha__ingest"], "spec_imported": False}
    # an edit is a miss: validated again, and the edit takes effect
    (specs / "alpha.yaml").write_text(SPEC.replace("[a]", "[a, b]"))
    plans = plan_cache.plans_for(specs / "alpha.yaml")
    assert plans[0]["tasks"][0]["kwargs"]["topics"] == ["a", "b"]
    assert len(list(cache.glob("*.json"))) == 2


def test_invalid_spec_is_never_cached(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC + "retries: lots\n")
    for _ in range(2):
        with pytest.raises(SpecError, match="field 'retries'"):
            plan_cache.plans_for(path)
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_unwritable_cache_only_costs_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MLOPS_OPS_PLAN_CACHE", str(blocker / "sub"))
    path = tmp_path / "ok.yaml"
    path.write_text(SPEC)
    assert plan_cache.plans_for(path)[0]["dag"]["dag_id"] == "ok__ingest"


def test_plan_names_only_known_operators() -> None:
    from mlops_ops.factories.pipeline import dag_from_plan

    plan = {"dag": {"dag_id": "x", "description": "", "schedule": None, "start_date": "2026-01-01T00:00:00+00:00",
                    "catchup": False, "max_active_runs": 1, "tags": [], "owner": "o", "retries": 0, "doc_md": ""},
            "tasks": [{"operator": "os.system", "outlets": [], "kwargs": {"task_id": "t"}}]}  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown operator 'os\.system'"):
        dag_from_plan(plan)
