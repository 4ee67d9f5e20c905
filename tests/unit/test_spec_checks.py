"""``mlops-ops validate`` finds what a spec's first run would fail on (mlops_ops/spec_checks.py), each problem as
``file:line: field: problem``. Every broken spec below parses (the DAG processor accepts it) unless marked, and then
fails at run time; the base spec passes every check, so none of them fires on its own."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_ops.factories.loader import check_spec_files
from tests.conftest import ROOT

TEAM = """
def decode(value):
    return {"customer_id": value.decode()}

def decode_two(value, schema):
    return {}

def features(df, spark, **params):
    return df

def features_bad(df):
    return df

def features_without_params(df, spark):
    return df

def trainer_bad(data, params):
    return None

def trainer_regression_only(data, *, params, log_metric):
    return None

trainer_regression_only.tasks = ("regression",)

def metric_bad(y_true):
    return 0.0
"""

BASE = """pipeline: p
source:
  kafka:
    topics: [events]
    deserializer: team:decode
    schema: {customer_id: string, tenure_months: int, monthly_charges: float, total_charges: float,
             contract: string, support_calls: int, churned: int}
quality:
  suite: churn_raw
preprocess:
  transform: team:features
  key_column: customer_id
train:
  trainer: sklearn
  task: binary
  target: churned
evaluate:
  metrics: [roc_auc, accuracy]
  thresholds: {roc_auc: {min: 0.6}}
promote:
  model_name: p
"""

# (case, replacements on BASE, field the problem names, whether parsing alone finds it)
CASES: list[tuple[str, list[tuple[str, str]], str, bool]] = [
    ("deserializer_module_missing", [("team:decode", "team.nothing:decode")], "source.kafka.deserializer", False),
    ("deserializer_function_missing", [("team:decode", "team:no_such_function")], "source.kafka.deserializer", False),
    ("deserializer_signature", [("team:decode", "team:decode_two")], "source.kafka.deserializer", False),
    ("transform_missing", [("team:features", "team:features_gone")], "preprocess.transform", False),
    ("transform_signature", [("team:features", "team:features_bad")], "preprocess.transform", False),
    ("transform_params", [("team:features", "team:features_without_params"),
                          ("key_column: customer_id", "key_column: customer_id\n  params: {window: 3}")],
     "preprocess.transform", False),
    ("trainer_signature", [("trainer: sklearn", "trainer: 'team:trainer_bad'")], "train.trainer", False),
    ("trainer_task", [("trainer: sklearn", "trainer: 'team:trainer_regression_only'")], "train.trainer", False),
    ("custom_metric_signature", [("metrics: [roc_auc, accuracy]", "metrics: [roc_auc, lift]\n  custom_metrics: "
                                  "{lift: {function: 'team:metric_bad'}}")], "evaluate.custom_metrics.lift.function",
     False),
    ("suite_missing", [("suite: churn_raw", "suite: churn_rwa")], "quality.suite", False),
    ("suite_names_absent_columns", [("tenure_months: int, ", "")], "quality.suite", False),
    ("checkpoint_missing", [("suite: churn_raw", "suite: orphan\n  engine: spark")], "quality.suite", False),
    ("sql_file_missing", [("transform: team:features", "sql: missing.sql")], "preprocess.sql", False),
    ("sql_does_not_parse", [("transform: team:features", "sql: broken.sql")], "preprocess.sql", False),
    ("connection_missing", [("topics: [events]", "topics: [events]\n    conn_id: kafka_prod")],
     "source.kafka.conn_id", False),
    ("rmse_on_a_classification_task", [("metrics: [roc_auc, accuracy]", "metrics: [roc_auc, rmse]")],
     "evaluate.metrics", True),
    ("threshold_on_an_uncomputed_metric", [("thresholds: {roc_auc: {min: 0.6}}", "thresholds: {f1: {min: 0.6}}")],
     "evaluate.thresholds", True),
]  # fmt: skip


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A team's folder: its code module, a GX context with one more suite that has no checkpoint, SQL files."""
    (tmp_path / "team.py").write_text(TEAM)
    gx = tmp_path / "great_expectations"
    shutil.copytree(ROOT / "great_expectations", gx, ignore=shutil.ignore_patterns("uncommitted"))
    orphan = (gx / "expectations" / "churn_raw.json").read_text().replace('"churn_raw"', '"orphan"')
    (gx / "expectations" / "orphan.json").write_text(orphan)
    (tmp_path / "broken.sql").write_text("SELEC customer_id FROM raw WHERE")
    monkeypatch.setenv("MLOPS_OPS_GX_ROOT", str(gx))
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", '{"conn_type": "kafka", "extra": {"bootstrap.servers": "h:1"}}')
    return tmp_path


def _spec(folder: Path, name: str, replacements: list[tuple[str, str]]) -> Path:
    text = BASE.replace("pipeline: p", f"pipeline: {name}").replace("model_name: p", f"model_name: {name}")
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_the_base_spec_passes_every_check(project: Path) -> None:
    assert check_spec_files([_spec(project, "base", [])], deep=True, connections=True) == []


@pytest.mark.parametrize(("case", "replacements", "field", "parse_finds"), CASES, ids=[c[0] for c in CASES])
def test_validate_finds_what_the_first_run_would_fail_on(project: Path, case: str,
                                                         replacements: list[tuple[str, str]], field: str,
                                                         parse_finds: bool) -> None:  # fmt: skip
    path = _spec(project, case, replacements)
    shallow = check_spec_files([path])
    assert bool(shallow) == parse_finds, shallow  # what the DAG processor alone would say
    problems = check_spec_files([path], deep=True, connections=True)
    assert problems, f"{case}: validate found nothing"
    lines = path.read_text().splitlines()
    for problem in problems:
        where = problem.split(": ", 1)[0]
        file, line = where.rsplit(":", 1)
        assert file == str(path) and 1 <= int(line) <= len(lines), problem
    located = [p for p in problems if p.split(": ", 2)[1].startswith(field)]
    assert located, problems
    key = field.split(".")[-1]
    assert key in lines[int(located[0].split(": ", 1)[0].rsplit(":", 1)[1]) - 1], located  # the field's own line


def test_the_cli_prints_file_line_field_problem_and_exits_1(project: Path) -> None:
    bad = _spec(project, "cli_case", [("team:features", "team:features_bad")])
    cli = Path(sys.executable).parent / "mlops-ops"
    done = subprocess.run([str(cli), "validate", str(bad), "--no-connections"], capture_output=True, text=True,
                          timeout=300, cwd=project)  # fmt: skip
    assert done.returncode == 1
    line = next(i for i, text in enumerate(bad.read_text().splitlines(), 1) if "transform:" in text)
    assert f"{bad}:{line}: preprocess.transform: does not take what the library passes" in done.stderr, done.stderr
    shallow = subprocess.run([str(cli), "validate", str(bad), "--shallow"], capture_output=True, text=True, timeout=120)
    assert shallow.returncode == 0, shallow.stderr


def test_the_pre_commit_hook_runs_validate() -> None:
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    by_id = {h["id"]: h for h in hooks}
    assert by_id["mlops-ops-validate"]["entry"] == "mlops-ops validate"
    assert by_id["mlops-ops-validate-shallow"]["entry"] == "mlops-ops validate --shallow"
    import re

    for hook in by_id.values():
        assert re.search(hook["files"], "dags/pipelines/churn.yaml") and not re.search(hook["files"], "dags/x.py")
