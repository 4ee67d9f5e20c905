"""Bad pipeline specs: each gets a clear error naming file, field and value, and never breaks other DAGs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.reliability.bad_specs import BASE, CASES


def _write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(("case", "text", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_each_bad_spec_gets_a_clear_error(tmp_path: Path, case: str, text: str | bytes, fragments: list[str]) -> None:
    from mlops_ops.factories.loader import check_spec_files

    path = _write(tmp_path / "p.yaml", text)
    problems = check_spec_files([path])
    assert problems, f"{case}: accepted"
    message = "\n".join(problems)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, f"{case}: {fragment!r} not in {message}"


def test_the_base_spec_is_valid(tmp_path: Path) -> None:
    from mlops_ops.factories.loader import check_spec_files

    assert check_spec_files([_write(tmp_path / "p.yaml", BASE.format(name="p"))]) == []


def test_validate_cli_exits_non_zero_and_lists_every_bad_file(tmp_path: Path) -> None:
    for i, (_, text, _) in enumerate(CASES[:10]):
        _write(tmp_path / f"p{i}.yaml", _renamed(text, f"p{i}"))
    _write(tmp_path / "good.yaml", BASE.format(name="good"))
    result = subprocess.run([sys.executable, "-m", "mlops_ops.cli.main", "validate", str(tmp_path), "--no-connections"],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert all(f"p{i}.yaml" in output for i in range(10)) and "good.yaml" not in output


def _renamed(text: str | bytes, stem: str) -> str | bytes:
    """The case with its pipeline (and model) named after the file it is written to."""
    if isinstance(text, bytes):
        return text.replace(b"pipeline: p\n", f"pipeline: {stem}\n".encode())
    return text.replace("pipeline: p\n", f"pipeline: {stem}\n").replace("model_name: p\n", f"model_name: {stem}\n")


def test_a_folder_of_bad_specs_does_not_break_the_good_pipelines(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Airflow's own DagBag over the project's two DAG files: good DAGs load, one import error lists every bad file."""
    from airflow.dag_processing.dagbag import DagBag

    dags = tmp_path / "dags"
    (dags / "pipelines").mkdir(parents=True)
    for name in ("mlops_pipelines.py", "mlops_spec_errors.py"):
        shutil.copy(ROOT / "dags" / name, dags / name)
    stems = []
    for i, (case, text, _) in enumerate(CASES):
        stem = f"bad_{i:02d}"
        stems.append((stem, case))
        _write(dags / "pipelines" / f"{stem}.yaml", _renamed(text, stem))
    _write(dags / "pipelines" / "good.yaml", BASE.format(name="good"))
    monkeypatch.setenv("MLOPS_OPS_PLAN_CACHE", str(tmp_path / "plans"))

    bag = DagBag(dag_folder=str(dags))
    assert {"good__training"} <= set(bag.dags)
    assert not any(d.startswith("bad_") for d in bag.dags)
    errors = {Path(k).name: v for k, v in bag.import_errors.items()}
    assert set(errors) == {"mlops_spec_errors.py"}, errors
    missing = [case for stem, case in stems if f"{stem}.yaml" not in errors["mlops_spec_errors.py"]]
    assert not missing, missing
    assert f"{len(CASES)} pipeline spec file(s) could not be turned into DAGs" in errors["mlops_spec_errors.py"]
