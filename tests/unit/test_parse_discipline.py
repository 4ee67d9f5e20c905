"""Parsing dags/ must stay light: checked in a fresh interpreter, as the DAG processor would."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["pyspark", "mlflow", "evidently", "great_expectations", "torch", "sklearn", "pandas", "boto3", "pyiceberg",
         "confluent_kafka"]  # fmt: skip

PROBE = """
import json, sys
import mlops_ops, mlops_ops.plugin, mlops_ops.provider_info
after_import = sorted(m for m in {heavy} if m in sys.modules)
from mlops_ops._compat import dag_bag
DagBag = dag_bag()
bag = DagBag(dag_folder={folder!r})
print(json.dumps({{
    "after_import": after_import,
    "after_parse": sorted(m for m in {heavy} if m in sys.modules),
    "dags": sorted(bag.dags),
    "errors": {{k: str(v) for k, v in bag.import_errors.items()}},
}}))
"""


def _parse(folder: Path, tmp_path: Path) -> dict:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__DAGS_FOLDER": str(folder)}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY, folder=str(folder))],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_parsing_dags_imports_no_heavy_module(tmp_path: Path) -> None:
    result = _parse(ROOT / "dags", tmp_path)
    assert result["after_import"] == []
    assert result["after_parse"] == []
    assert result["errors"] == {}
    assert {"churn__training", "example_taskflow_ingest"} <= set(result["dags"])


def test_invalid_spec_is_an_import_error_naming_file_and_field(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    shutil.copytree(ROOT / "dags", dags)
    (dags / "pipelines" / "broken.yaml").write_text("source:\n  kafka:\n    topics: [ok]\n    max_messages: -5\n")
    result = _parse(dags, tmp_path)
    assert list(result["errors"]) == [str(dags / "mlops_spec_errors.py")]
    error = next(iter(result["errors"].values()))
    assert "broken.yaml: line 4, field 'source.kafka.max_messages'" in error
    assert "greater than 0" in error and "-5" in error
    # the other pipelines and the other DAG files still load
    assert {
        "churn__ingest",
        "churn__training",
        "churn__drift",
        "churn_exports__ingest",
        "example_taskflow_ingest",
    } <= set(result["dags"])
    assert "broken__training" not in result["dags"]
    assert result["after_parse"] == []
