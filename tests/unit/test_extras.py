"""Optional dependencies: a missing one names its ``pip install 'mlops-ops[...]'`` command, and every extra's
library imports in the locked environment from ``python -c``, a script and a notebook kernel."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mlops_ops._extras import EXTRA_OF, extra_of, require
from mlops_ops.exceptions import MissingExtraError

# What each runtime extra brings, by import name (pyproject.toml's [project.optional-dependencies]).
LIBRARIES = {
    "lake": ["pyiceberg", "pyarrow"],
    "kafka": ["confluent_kafka", "airflow.providers.apache.kafka"],
    "s3": ["boto3", "s3fs", "airflow.providers.amazon"],
    "spark": ["pyspark", "pyspark.sql.connect.dataframe"],
    "gx": ["great_expectations"],
    "mlflow": ["mlflow"],
    "evidently": ["evidently"],
    "sklearn": ["sklearn", "skops.io"],
    "torch": ["torch"],
    "docker": ["airflow.providers.docker"],
    "kubernetes": ["airflow.providers.cncf.kubernetes"],
    "metrics": ["statsd"],
    "lineage": ["airflow.providers.openlineage"],
    "postgres": ["psycopg2", "asyncpg"],
    "celery": ["celery", "redis", "airflow.providers.celery"],
}
MODULES = [m for extra, modules in LIBRARIES.items() if extra != "torch" for m in modules]
IMPORTS = [pytest.param(MODULES, id="runtime-extras"), pytest.param(["torch"], id="torch", marks=pytest.mark.torch)]

BLOCKER = """
import sys

class Missing:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {top!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

sys.meta_path.insert(0, Missing())
"""


def test_every_extra_library_has_an_extra_named_for_it() -> None:
    for modules in LIBRARIES.values():
        for module in modules:
            if module.split(".")[0] in EXTRA_OF or module in EXTRA_OF or "." in module:
                try:
                    found = extra_of(module)
                except KeyError:
                    continue
                assert found in LIBRARIES or found == "stack", (module, found)


def test_require_names_the_pip_command_and_keeps_other_import_errors() -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'mlops-ops\[sklearn\]'"):
        require("sklearn.not_a_module_xyz")
    with pytest.raises(MissingExtraError, match=r"pip install 'mlops-ops\[spark\]'"):
        require("not_installed_module_xyz", "spark")
    assert extra_of("airflow.providers.cncf.kubernetes.operators.pod") == "kubernetes"


@pytest.mark.parametrize(
    ("missing", "extra", "code"),
    [
        (
            "sklearn",
            "sklearn",
            "import numpy as np\nfrom mlops_ops.training.evaluation import compute_metrics, Predictions\n"
            "compute_metrics(np.array([0, 1]), Predictions('binary', np.array([0.1, 0.9])), ['f1'])",
        ),
        (
            "sklearn",
            "sklearn",
            "from mlops_ops.training.trainers import estimator_class\nestimator_class(None, 'binary')",
        ),
        ("torch", "torch", "from mlops_ops.training.torch_mlp import build_body\nbuild_body(3, [4], 0.0, 1)"),
        ("mlflow", "mlflow", "from mlops_ops.training.evaluation import ModelScorer\nModelScorer('models:/m/1')"),
        ("psutil", "stack", "import mlops_ops.stack.process"),
    ],
)
def test_a_missing_library_in_training_names_its_extra(missing: str, extra: str, code: str) -> None:
    script = (
        BLOCKER.format(top=missing)
        + f"""
from mlops_ops.exceptions import MissingExtraError
try:
{chr(10).join("    " + line for line in code.splitlines())}
except MissingExtraError as err:
    print("MISSING:", err)
"""
    )
    out = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120)
    assert f"pip install 'mlops-ops[{extra}]'" in out.stdout, out.stdout + out.stderr


def _imported(out: str) -> list[str]:
    """The test's own lines (GX logs info lines to stdout once Airflow's structlog is set up)."""
    return [line for line in out.splitlines() if line.startswith("imported ")]


def _imports(module: str) -> str:
    return f"import {module}; print('imported {module}')"


@pytest.mark.parametrize("modules", IMPORTS)
def test_every_extra_library_imports_from_python_c(modules: list[str]) -> None:
    """``python -c``: pyspark's doctest guard used to end such a process silently when GX probed Spark Connect."""

    def run(module: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        return module, subprocess.run([sys.executable, "-c", _imports(module)], capture_output=True, text=True,
                                      timeout=300)  # fmt: skip

    with ThreadPoolExecutor(max_workers=2) as pool:
        for module, done in pool.map(run, modules):
            assert done.returncode == 0 and f"imported {module}" in done.stdout, (module, done.stdout, done.stderr)


@pytest.mark.parametrize("modules", IMPORTS)
def test_every_extra_library_imports_from_a_script(tmp_path: Path, modules: list[str]) -> None:
    script = tmp_path / "imports.py"
    script.write_text("\n".join(_imports(m) for m in modules) + "\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _imported(done.stdout) == [f"imported {m}" for m in modules]


@pytest.mark.parametrize("modules", IMPORTS)
def test_every_extra_library_imports_in_a_notebook_kernel(modules: list[str]) -> None:
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", extra_arguments=[], startup_timeout=120,
                                       executable=sys.executable)  # type: ignore[call-arg]  # fmt: skip
    try:
        printed: list[str] = []

        def keep(message: dict[str, Any]) -> None:
            printed.append(message["content"].get("text", ""))

        for module in modules:
            reply = client.execute_interactive(_imports(module), timeout=300, output_hook=keep)
            assert reply["content"]["status"] == "ok", (module, reply["content"])
        assert _imported("".join(printed)) == [f"imported {m}" for m in modules]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
