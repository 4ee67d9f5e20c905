from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ops.exceptions import SpecError
from mlops_ops.spec_loader import MAX_EXPANDED_NODES, load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
pipeline: churn
schedule: "0 3 * * *"
source:
  kafka:
    topics: [events]
    schema: {id: string, amount: float}
"""


def test_example_spec_loads() -> None:
    spec = load_spec(ROOT / "dags" / "pipelines" / "churn.yaml")
    assert spec.pipeline == "churn"
    assert spec.source is not None and spec.source.kafka is not None
    assert spec.source.kafka.topics == ["churn-events"]
    assert spec.source.kafka.schema_ is not None and spec.source.kafka.schema_["churned"] == "bool"
    assert spec.stages() == ["source.kafka", "quality", "preprocess", "train", "evaluate", "promote", "drift",
                             "retrain"]  # fmt: skip


def test_minimal_spec_defaults() -> None:
    spec = parse_spec(GOOD, source="x.yaml", default_pipeline="churn")
    assert spec.schedule == "0 3 * * *"
    assert spec.retries == 2
    assert spec.source.kafka.conn_id == "kafka_default"  # type: ignore[union-attr]
    assert spec.source.kafka.dead_letter.max_bad_share == 0.1  # type: ignore[union-attr]


def test_pipeline_defaults_to_file_stem() -> None:
    spec = parse_spec("source: {kafka: {topics: [a]}}", default_pipeline="fraud")
    assert spec.pipeline == "fraud"


def test_every_problem_is_listed_with_file_line_field_and_value() -> None:
    text = """pipeline: churn
schedule: "every day"
retries: -1
sourse: {}
source:
  kafka:
    topics: []
    schema: {id: strng}
train:
  executor: gpu-cluster
  task: binary
  target: y
  trainer: torch_mlp
"""
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="dags/pipelines/churn.yaml", default_pipeline="churn")
    message = str(info.value)
    by_field = {p.field: p for p in info.value.problems}
    assert "dags/pipelines/churn.yaml" in message
    assert by_field["schedule"].line == 2 and "cron" in by_field["schedule"].message
    assert by_field["retries"].given == -1 and by_field["retries"].line == 3
    assert "not a known key" in by_field["sourse"].message and by_field["sourse"].line == 4
    assert by_field["source.kafka.topics"].line == 7
    assert by_field["source.kafka.schema.id"].given == "strng"
    assert "'string'" in by_field["source.kafka.schema.id"].message
    assert by_field["train.executor"].given == "gpu-cluster"
    assert "'local', 'docker' or 'kubernetes'" in by_field["train.executor"].message
    assert "line 10, field 'train.executor'" in message


@pytest.mark.parametrize(
    ("text", "field", "fragment"),
    [
        ("- a\n- b", "<root>", "must be a mapping"),
        ("", "<root>", "empty"),
        ("pipeline: [unclosed", "<yaml>", "not valid YAML"),
        ("pipeline: other\nsource: {kafka: {topics: [a]}}", "pipeline", "file name stem"),
        ("description: no source", "<root>", "needs a 'source' stage"),
        ("source: {}", "source", "at least one of 'kafka' or 's3'"),
        ("source: {kafka: {topics: [a]}}\nevaluate: {metrics: [f1]}", "<root>", "needs stage 'train'"),
        ("source: {kafka: {topics: [a]}}\nschedule: '61 * * * *'", "schedule", "not a valid cron"),
        ("source: {kafka: {topics: [a]}}\npreprocess: {key_column: id}", "preprocess", "exactly one of"),
        (
            "source: {kafka: {topics: [a]}}\npreprocess: {key_column: id, sql: a.sql, splits: {train: 0.9, test: 0.2}}",
            "preprocess.splits",
            "must equal 1.0",
        ),
        ("source: {kafka: {topics: ['bad topic']}}", "source.kafka.topics.0", "match pattern"),
        ("source: {kafka: {topics: [a], deserializer: 'not a path'}}", "source.kafka.deserializer", "pattern"),
        ("source: {s3: {bucket: b-1, format: xml}}", "source.s3.format", "'csv', 'jsonl' or 'parquet'"),
        ("source: {kafka: {topics: [a]}}\nlake: ftp://x", "lake", "pattern"),
    ],
)
def test_bad_specs_name_the_field(text: str, field: str, fragment: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="p.yaml", default_pipeline="p")
    fields = {p.field: p.message for p in info.value.problems}
    assert field in fields, fields
    assert fragment in fields[field]


def test_alias_bomb_is_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 8):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [*{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}]\n"
    with pytest.raises(SpecError, match=f"more than {MAX_EXPANDED_NODES} nodes"):
        parse_spec(bomb, default_pipeline="p")


def test_unsafe_yaml_tags_are_refused() -> None:
    with pytest.raises(SpecError, match="not valid YAML"):
        parse_spec("pipeline: !!python/object/apply:os.system ['true']", default_pipeline="p")


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("# " + "x" * 1_100_000)
    with pytest.raises(SpecError, match="at most"):
        load_spec(path)


ML_SPEC = """pipeline: homes
source:
  s3: {{bucket: homes-data, format: parquet}}
preprocess:
  transform: pkg.features:homes
  key_column: house_id
train:
  trainer: {trainer}
  task: {task}
  target: price
{train_extra}
evaluate:
  metrics: {metrics}
{evaluate_extra}
"""


def _ml(task: str = "regression", trainer: str = "sklearn", metrics: str = "[rmse, r2]", train_extra: str = "",
        evaluate_extra: str = "") -> str:  # fmt: skip
    return ML_SPEC.format(task=task, trainer=trainer, metrics=metrics, train_extra=train_extra,
                          evaluate_extra=evaluate_extra)  # fmt: skip


def _problems(text: str) -> dict[str, object]:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="dags/pipelines/homes.yaml", default_pipeline="homes")
    assert "dags/pipelines/homes.yaml" in str(info.value)
    return {p.field: p for p in info.value.problems}


def test_a_regression_spec_with_an_estimator_by_class_path_loads() -> None:
    extra = (
        "  estimator: sklearn.ensemble.RandomForestRegressor\n  max_rows: 100000\n"
        "  features: {exclude: [listing_url], types: {zip: categorical}}"
    )
    spec = parse_spec(_ml(train_extra=extra), default_pipeline="homes")
    assert spec.train is not None and spec.train.estimator == "sklearn.ensemble.RandomForestRegressor"
    assert spec.train.features.types == {"zip": "categorical"} and spec.train.features.impute.numeric == "median"


@pytest.mark.parametrize(
    ("text", "field", "line", "fragment"),
    [
        (_ml(metrics="[roc_auc, f1]"), "evaluate.metrics.0", 13, "binary metric, not a regression one"),
        (_ml(metrics="[rmse, accuracy]"), "evaluate.metrics.1", 13, "regression metrics: rmse, mae, mape, r2"),
        (_ml(task="multiclass", metrics="[f1]"), "evaluate.metrics.0", 13, "f1_macro"),
        (
            _ml(metrics="[rmse]", evaluate_extra="  thresholds: {r2: {min: 0.5}}"),
            "evaluate.thresholds.r2",
            14,
            "evaluate.metrics does not compute",
        ),
        (
            _ml(metrics="[rmse]", evaluate_extra="  max_regression: {mae: 0.1}"),
            "evaluate.max_regression.mae",
            14,
            "evaluate.metrics does not compute",
        ),
        (_ml(task="classification"), "train.task", 9, "'binary' (two classes) or 'multiclass'"),
        (
            _ml(train_extra="  estimator: sklearn.linear_model.LogisticRegression"),
            "train.estimator",
            11,
            "is a classifier",
        ),
        (
            _ml(trainer="torch_mlp", train_extra="  estimator: sklearn.svm.SVR"),
            "train.estimator",
            11,
            "trainer 'sklearn' only",
        ),
        (_ml(train_extra="  positive_class: 'yes'"), "train.positive_class", 11, "task 'binary' only"),
        (
            _ml(task="binary", metrics="[f1]", train_extra="  threshold: {tune: roc_auc}"),
            "train.threshold.tune",
            11,
            "can be tuned for f1",
        ),
        (_ml(trainer="torch_mlp", train_extra="  max_rows: 10"), "train.max_rows", 11, "streams"),
        (_ml(train_extra="  features: {include: [price]}"), "train.features.include.0", 11, "is the target"),
        (
            _ml(metrics="[rmse]", evaluate_extra="  custom_metrics: {pinball: {function: 'pkg.m:pinball'}}"),
            "evaluate.custom_metrics.pinball",
            14,
            "not listed in evaluate.metrics",
        ),
    ],
)
def test_ml_settings_that_do_not_fit_are_refused_at_parse_time(text: str, field: str, line: int,
                                                                fragment: str) -> None:  # fmt: skip
    problems = _problems(text)
    assert field in problems, problems
    problem = problems[field]
    assert fragment in problem.message, problem.message  # type: ignore[attr-defined]
    assert problem.line == line, (problem.line, text.splitlines()[line - 1])  # type: ignore[attr-defined]


def test_a_custom_metric_listed_in_metrics_is_accepted() -> None:
    spec = parse_spec(_ml(metrics="[pinball, rmse]", evaluate_extra="  custom_metrics: {pinball: {function: "
                          "'pkg.m:pinball', higher_is_better: false}}\n  thresholds: {pinball: {max: 3}}"),
                      default_pipeline="homes")  # fmt: skip
    assert spec.evaluate is not None and not spec.evaluate.custom_metrics["pinball"].higher_is_better
