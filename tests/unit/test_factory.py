from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ops.exceptions import SpecError, StageNotSupportedError
from mlops_ops.factories.loader import PipelineLoadError, check_spec_files, load_pipelines
from mlops_ops.factories.pipeline import build_training_dag, pipeline_of_dag_id, raw_asset
from mlops_ops.operators.kafka import KafkaToLakeOperator
from mlops_ops.spec_loader import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = "source: {kafka: {topics: [a, b], schema: {id: string}, dead_letter: {max_bad_share: 0.05}}}\n"


def test_training_dag_from_example_spec() -> None:
    spec = load_spec(ROOT / "dags" / "pipelines" / "churn.yaml")
    dag = build_training_dag(spec, source="dags/pipelines/churn.yaml")
    assert dag.dag_id == "churn__training"
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert {"mlops-ops", "churn", "example"} <= set(dag.tags)
    assert [t.task_id for t in dag.tasks] == [
        "ingest_kafka",
        "quality_gate",
        "preprocess",
        "train",
        "evaluate",
        "promote",
    ]
    task = dag.get_task("ingest_kafka")
    assert isinstance(task, KafkaToLakeOperator)
    assert task.topics == ["churn-events"]
    assert task.schema is not None and task.schema["event_time"] == "timestamp"
    assert task.outlets == [raw_asset("churn")]
    assert task.retries == 2
    assert "dags/pipelines/churn.yaml" in (dag.doc_md or "")


def test_spec_settings_reach_the_operator() -> None:
    spec = parse_spec(SPEC + "lake: s3://my-lake/x\n", default_pipeline="p")
    task = build_training_dag(spec).get_task("ingest_kafka")
    assert task.lake == "s3://my-lake/x"
    assert task.max_bad_share == 0.05
    assert task.topics == ["a", "b"]


def test_stage_not_built_yet_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stage of the spec is built now; the guard still rejects any stage missing from SUPPORTED_STAGES."""
    from mlops_ops.factories import pipeline

    monkeypatch.setattr(pipeline, "SUPPORTED_STAGES", ("source.kafka",))
    spec = parse_spec(SPEC + "preprocess: {transform: 'm:f', key_column: id}\n", default_pipeline="p")
    with pytest.raises(StageNotSupportedError, match=r"stage 'preprocess' is not supported yet"):
        build_training_dag(spec, source="p.yaml")


def test_s3_source_builds_sensor_and_ingest() -> None:
    from mlops_ops.operators.s3 import S3ToLakeOperator
    from mlops_ops.sensors.s3 import NewS3ObjectsSensor

    text = "source: {s3: {bucket: raw-data, prefix: in/, glob: '*.csv', format: csv, schema: {id: string}}}"
    dag = build_training_dag(parse_spec(text, default_pipeline="p"))
    assert [t.task_id for t in dag.tasks] == ["ingest_s3"]
    ingest = dag.get_task("ingest_s3")
    assert isinstance(ingest, S3ToLakeOperator)
    assert (ingest.bucket, ingest.prefix, ingest.glob, ingest.schema) == ("raw-data", "in/", "*.csv", {"id": "string"})
    assert ingest.outlets == [raw_asset("p")]
    waiting = build_training_dag(parse_spec(text.replace("format: csv", "format: csv, wait_for_new_s: 600"),
                                            default_pipeline="p"))  # fmt: skip
    sensor = waiting.get_task("wait_for_s3_objects")
    assert isinstance(sensor, NewS3ObjectsSensor)
    assert sensor.deferrable and sensor.timeout == 600 and sensor.soft_fail
    assert waiting.get_task("ingest_s3").upstream_task_ids == {"wait_for_s3_objects"}


def test_kafka_and_s3_sources_together() -> None:
    text = "source: {kafka: {topics: [a]}, s3: {bucket: raw-data, format: jsonl}}"
    dag = build_training_dag(parse_spec(text, default_pipeline="p"))
    assert sorted(t.task_id for t in dag.tasks) == ["ingest_kafka", "ingest_s3"]


def test_pipeline_of_dag_id() -> None:
    assert pipeline_of_dag_id("churn__training") == "churn"
    assert pipeline_of_dag_id("my_pipe__drift") == "my_pipe"
    assert pipeline_of_dag_id("example_taskflow_ingest") is None


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def test_loader_builds_every_spec(tmp_path: Path) -> None:
    _write(tmp_path, "alpha.yaml", SPEC)
    _write(tmp_path, "beta.yml", SPEC)
    _write(tmp_path, "notes.txt", "not a spec")
    target: dict = {}
    assert load_pipelines(target, tmp_path) == ["alpha__training", "beta__training"]
    assert set(target) == {"alpha__training", "beta__training"}


def test_loader_raises_one_error_naming_every_bad_file(tmp_path: Path) -> None:
    _write(tmp_path, "good.yaml", SPEC)
    _write(tmp_path, "bad.yaml", SPEC + "schedule: sometimes\n")
    _write(tmp_path, "later.yaml", SPEC + "drift: {}\n")  # drift without promote
    with pytest.raises(PipelineLoadError) as info:
        load_pipelines({}, tmp_path)
    message = str(info.value)
    assert "2 pipeline spec file(s)" in message
    assert f"{tmp_path / 'bad.yaml'}: line 2, field 'schedule'" in message
    assert "stage 'drift' needs stage 'promote'" in message
    assert "good__training" in message  # says which valid DAGs are held back


def test_loader_skip_mode_keeps_valid_specs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path, "good.yaml", SPEC)
    _write(tmp_path, "bad.yaml", "source: 3\n")
    target: dict = {}
    assert load_pipelines(target, tmp_path, on_error="skip") == ["good__training"]
    assert "bad.yaml" in caplog.text


def test_loader_builds_only_the_running_dags_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "alpha.yaml", SPEC)
    _write(tmp_path, "beta.yaml", "broken: [")  # would fail if it were read
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "alpha__training")
    target: dict = {}
    assert load_pipelines(target, tmp_path) == ["alpha__training"]


def test_validate_reports_problems(tmp_path: Path) -> None:
    good = _write(tmp_path / "ok", "good.yaml", SPEC)
    assert check_spec_files([good]) == []
    bad = _write(tmp_path / "ko", "bad.yaml", SPEC + "retries: many\n")
    problems = check_spec_files([tmp_path / "ko"])
    assert len(problems) == 1 and "field 'retries'" in problems[0] and str(bad) in problems[0]
    assert "not a spec file" in check_spec_files([tmp_path / "x.json"])[0]


def test_quality_gate_and_preprocess_follow_ingestion(tmp_path: Path) -> None:
    spec = parse_spec(
        SPEC + "quality: {suite: churn_raw, engine: spark}\n"
        "preprocess: {sql: features.sql, key_column: id, params: {n: 3},\n"
        "             splits: {train: 0.7, validation: 0.2, test: 0.1}}\n",
        default_pipeline="p",
    )
    dag = build_training_dag(spec, source=str(tmp_path / "p.yaml"))
    gate, pre = dag.get_task("quality_gate"), dag.get_task("preprocess")
    assert gate.upstream_task_ids == {"ingest_kafka"} and gate.ingest_task_ids == ["ingest_kafka"]
    assert gate.suite == "churn_raw" and gate.engine == "spark"
    assert pre.upstream_task_ids == {"quality_gate"}
    assert gate.trigger_rule == "none_failed_min_one_success"
    assert pre.trigger_rule == "none_failed"  # nothing new ingested: a retraining run still rebuilds
    assert pre.ingest_task_ids == ["ingest_kafka"]
    assert pre.sql == str(tmp_path / "features.sql")
    assert pre.transform_params == {"n": 3} and pre.splits == {"train": 0.7, "validation": 0.2, "test": 0.1}
    assert [o.name for o in pre.outlets] == ["mlops_ops.p.features"]


TRAINING = (
    "preprocess: {transform: 'm.mod:f', key_column: id}\n"
    "train: {trainer: torch_mlp, task: classification, target: churned, params: {epochs: 3},\n"
    "        executor: kubernetes, image: reg/trainer:1, resources: {gpus: 1, memory: 8Gi},\n"
    "        node_selector: {pool: gpu}, tolerations: [{key: nvidia.com/gpu, operator: Exists}]}\n"
    "evaluate: {metrics: [roc_auc, accuracy], thresholds: {roc_auc: {min: 0.7}}, max_regression: {accuracy: 0.01},\n"
    "           slice_column: contract}\n"
    "promote: {model_name: churn-model}\n"
)


def test_train_evaluate_promote_tasks() -> None:
    from mlops_ops.operators.evaluate import EvaluateModelOperator, PromoteModelOperator
    from mlops_ops.operators.train import TrainModelOperator

    dag = build_training_dag(parse_spec(SPEC + TRAINING, default_pipeline="p"), source="p.yaml")
    assert [t.task_id for t in dag.tasks] == ["ingest_kafka", "preprocess", "train", "evaluate", "promote"]
    train, evaluate, promote = dag.get_task("train"), dag.get_task("evaluate"), dag.get_task("promote")
    assert isinstance(train, TrainModelOperator) and train.upstream_task_ids == {"preprocess"}
    assert train.model_name == "churn-model" and train.run_in == "kubernetes" and train.trainer == "torch_mlp"
    assert train.container["image"] == "reg/trainer:1" and train.container["resources"]["gpus"] == 1
    assert train.container["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists"}]
    assert isinstance(evaluate, EvaluateModelOperator) and evaluate.thresholds == {"roc_auc": {"min": 0.7, "max": None}}
    assert evaluate.max_regression == {"accuracy": 0.01} and evaluate.slice_column == "contract"
    assert isinstance(promote, PromoteModelOperator) and [o.name for o in promote.outlets] == ["mlops_ops.p.model"]
    assert "train_params" in dag.params


def test_train_needs_a_feature_table() -> None:
    with pytest.raises(SpecError, match="stage 'train' needs stage 'preprocess'"):
        parse_spec(SPEC + "train: {trainer: sklearn, task: regression, target: y}\n", default_pipeline="p")


def test_drift_dag_and_retraining_triggers_from_example_spec() -> None:
    from airflow.sdk import AssetAny, AssetOrTimeSchedule

    from mlops_ops.factories.pipeline import build_dags, control_asset_name, drift_asset_name
    from mlops_ops.operators.drift import DriftCheckOperator, DriftSignalOperator
    from mlops_ops.triggers.control import ControlTopicTrigger

    spec = load_spec(ROOT / "dags" / "pipelines" / "churn.yaml")
    training, drift = build_dags(spec, source="dags/pipelines/churn.yaml")
    assert drift.dag_id == "churn__drift" and drift.max_active_runs == 1
    assert [t.task_id for t in drift.tasks] == ["ingest_kafka", "quality_gate", "drift_check", "drift_signal"]
    check, signal = drift.get_task("drift_check"), drift.get_task("drift_signal")
    assert isinstance(check, DriftCheckOperator) and isinstance(signal, DriftSignalOperator)
    assert (check.model_name, check.key_column, check.target) == ("churn", "customer_id", "churned")
    assert check.transform == "mlops_ops.examples.churn:churn_features" and check.trigger_rule == "none_failed"
    assert [a.name for a in signal.outlets] == [a.name for a in signal.inlets] == [drift_asset_name("churn")]
    assert signal.cooldown == "6h" and signal.retries == 0
    # the training DAG runs hourly OR on a drift signal OR on a control-topic request
    timetable = training.timetable
    assert isinstance(timetable, AssetOrTimeSchedule)
    condition = timetable.asset_condition
    assert isinstance(condition, AssetAny)
    by_name = {a.name: a for a in condition.objects}
    assert set(by_name) == {drift_asset_name("churn"), control_asset_name("churn")}
    assert by_name[drift_asset_name("churn")].watchers == []
    (watcher,) = by_name[control_asset_name("churn")].watchers
    assert isinstance(watcher.trigger, ControlTopicTrigger)
    assert watcher.trigger.serialize()[1] == {"pipeline": "churn", "topic": "mlops-ops.control",
                                              "kafka_config_id": "kafka_control", "poll_interval": 1.0}  # fmt: skip
    assert set(training.params) == {"train_params", "reason"}
    training.params.validate()  # runs without conf (schedule, assets, watcher) pass: every param has a valid default
    assert training.params.get_param("reason").schema["type"] == ["null", "string"]  # optional in the trigger form
    with pytest.raises(Exception, match="too long"):
        training.params.get_param("reason").resolve("x" * 501)


def test_retraining_needs_a_trigger_compatible_schedule() -> None:
    base = (
        SPEC
        + "preprocess: {transform: 'm:f', key_column: id}\ntrain: {trainer: sklearn, task: regression, target: y}\n"
    )
    with pytest.raises(SpecError, match="cannot be combined with retraining triggers"):
        parse_spec(base + "schedule: '@continuous'\nretrain: {control_topic: ctl}\n", default_pipeline="p")
    dag = build_training_dag(parse_spec(base + "retrain: {control_topic: ctl}\n", default_pipeline="p"))
    from airflow.sdk import Asset

    assert isinstance(dag.timetable.asset_condition, Asset)  # no cron: the control-topic Asset alone schedules it
    assert dag.timetable.asset_condition.name == "mlops_ops.p.retrain_request"
