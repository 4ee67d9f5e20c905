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
  task: classification
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
