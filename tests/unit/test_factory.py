from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ops.exceptions import SpecError, StageNotSupportedError
from mlops_ops.factories.loader import PipelineLoadError, check_spec_files, load_pipelines
from mlops_ops.factories.pipeline import build_dags
from mlops_ops.naming import pipeline_of_dag_id, raw_asset_name
from mlops_ops.operators.kafka import KafkaToLakeOperator
from mlops_ops.spec_loader import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = "source: {kafka: {topics: [a, b], schema: {id: string}, dead_letter: {max_bad_share: 0.05}}}\n"


def _dags(spec, source: str = "<spec>") -> dict:  # type: ignore[no-untyped-def]
    return {d.dag_id.rsplit("__", 1)[1]: d for d in build_dags(spec, source=source)}


def test_ingest_and_training_dags_from_example_spec() -> None:
    spec = load_spec(ROOT / "dags" / "pipelines" / "churn.yaml")
    dags = _dags(spec, "dags/pipelines/churn.yaml")
    assert set(dags) == {"ingest", "training", "drift"}
    ingest, training = dags["ingest"], dags["training"]
    assert ingest.dag_id == "churn__ingest" and training.dag_id == "churn__training"
    assert ingest.max_active_runs == 1 and ingest.catchup is False
    assert {"mlops-ops", "churn", "example"} <= set(ingest.tags)
    assert [t.task_id for t in ingest.tasks] == ["ingest_kafka", "quality_gate"]
    assert [t.task_id for t in training.tasks] == ["preprocess", "train", "evaluate", "promote"]
    task = ingest.get_task("ingest_kafka")
    assert isinstance(task, KafkaToLakeOperator)
    assert task.topics == ["churn-events"] and task.publish is False  # the gate publishes
    assert task.schema is not None and task.schema["event_time"] == "timestamp"
    assert task.outlets == []
    assert [o.name for o in ingest.get_task("quality_gate").outlets] == [raw_asset_name("churn")]
    assert task.retries == 2
    assert "dags/pipelines/churn.yaml" in (ingest.doc_md or "") and "only writer" in (ingest.doc_md or "")


def test_without_a_gate_the_source_task_publishes() -> None:
    spec = parse_spec(SPEC + "lake: s3://my-lake/x\n", default_pipeline="p")
    dags = _dags(spec)
    assert set(dags) == {"ingest"}  # no preprocess stage: nothing to train
    task = dags["ingest"].get_task("ingest_kafka")
    assert task.lake == "s3://my-lake/x" and task.max_bad_share == 0.05 and task.topics == ["a", "b"]
    assert task.publish is True and [o.name for o in task.outlets] == [raw_asset_name("p")]


def test_stage_not_built_yet_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every stage of the spec is built now; the guard still rejects any stage missing from SUPPORTED_STAGES."""
    from mlops_ops.factories import plan

    monkeypatch.setattr(plan, "SUPPORTED_STAGES", ("source.kafka",))
    spec = parse_spec(SPEC + "preprocess: {transform: 'm:f', key_column: id}\n", default_pipeline="p")
    with pytest.raises(StageNotSupportedError, match=r"stage 'preprocess' is not supported yet"):
        build_dags(spec, source="p.yaml")


def test_s3_source_is_watched_by_default() -> None:
    from airflow.sdk import Asset

    from mlops_ops.operators.s3 import S3ToLakeOperator
    from mlops_ops.triggers.sources import S3ArrivalsTrigger

    text = "source: {s3: {bucket: raw-data, prefix: in/, glob: '*.csv', format: csv, schema: {id: string}}}"
    dag = _dags(parse_spec(text, default_pipeline="p"))["ingest"]
    assert [t.task_id for t in dag.tasks] == ["ingest_s3"]
    ingest = dag.get_task("ingest_s3")
    assert isinstance(ingest, S3ToLakeOperator)
    assert (ingest.bucket, ingest.prefix, ingest.glob, ingest.schema) == ("raw-data", "in/", "*.csv", {"id": "string"})
    assert [o.name for o in ingest.outlets] == [raw_asset_name("p")]
    condition = dag.timetable.asset_condition
    assert isinstance(condition, Asset) and condition.name == "mlops_ops.p.s3_arrivals"
    (watcher,) = condition.watchers
    assert isinstance(watcher.trigger, S3ArrivalsTrigger)
    assert watcher.trigger.serialize()[1] == {
        "poll_interval": 60, "pipeline": "p", "bucket": "raw-data", "prefix": "in/", "glob": "*.csv",
        "on_change": "reingest", "source_conn_id": "aws_default", "iceberg_conn_id": "iceberg_default"}  # fmt: skip
    quiet = _dags(parse_spec(text.replace("format: csv", "format: csv, watch: false"), default_pipeline="p"))
    assert type(quiet["ingest"].timetable).__name__ == "NullTimetable"  # no schedule, no watcher: manual runs only


def test_kafka_watch_and_schedule_together() -> None:
    from mlops_ops._compat import asset_or_time_schedule

    AssetOrTimeSchedule = asset_or_time_schedule()

    from mlops_ops.triggers.sources import KafkaArrivalsTrigger

    text = "schedule: '@hourly'\nsource: {kafka: {topics: [a], watch: true, poll_interval_s: 10}}"
    dag = _dags(parse_spec(text, default_pipeline="p"))["ingest"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    (watcher,) = dag.timetable.asset_condition.watchers
    assert isinstance(watcher.trigger, KafkaArrivalsTrigger) and watcher.trigger.poll_interval == 10


def test_kafka_and_s3_sources_together() -> None:
    text = "source: {kafka: {topics: [a]}, s3: {bucket: raw-data, format: jsonl}}\nquality: {suite: s}"
    dag = _dags(parse_spec(text, default_pipeline="p"))["ingest"]
    assert [t.task_id for t in dag.tasks] == ["ingest_kafka", "ingest_s3", "quality_gate"]
    gate = dag.get_task("quality_gate")
    assert gate.upstream_task_ids == {"ingest_kafka", "ingest_s3"}
    assert gate.trigger_rule == "none_failed_min_one_success"
    assert not dag.get_task("ingest_kafka").publish and not dag.get_task("ingest_s3").publish


def test_pipeline_of_dag_id() -> None:
    assert pipeline_of_dag_id("churn__training") == "churn"
    assert pipeline_of_dag_id("churn__ingest") == "churn"
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
    assert load_pipelines(target, tmp_path) == ["alpha__ingest", "beta__ingest"]
    assert set(target) == {"alpha__ingest", "beta__ingest"}


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
    assert "good__ingest" in message  # says which valid DAGs are held back


def test_loader_skip_mode_keeps_valid_specs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path, "good.yaml", SPEC)
    _write(tmp_path, "bad.yaml", "source: 3\n")
    target: dict = {}
    assert load_pipelines(target, tmp_path, on_error="skip") == ["good__ingest"]
    assert "bad.yaml" in caplog.text


def test_loader_builds_only_the_running_dags_spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write(tmp_path, "alpha.yaml", SPEC)
    _write(tmp_path, "beta.yaml", "broken: [")  # would fail if it were read
    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "alpha__ingest")
    target: dict = {}
    assert load_pipelines(target, tmp_path) == ["alpha__ingest"]


def test_two_files_for_one_pipeline_are_an_error_and_neither_is_built(tmp_path: Path) -> None:
    """churn.yaml beside churn.yml: one replaced the other's DAGs without a word (N17)."""
    from mlops_ops.factories.loader import report_spec_errors

    _write(tmp_path, "churn.yaml", SPEC)
    _write(tmp_path, "churn.yml", SPEC + "retries: 5\n")
    _write(tmp_path, "other.yaml", SPEC)
    with pytest.raises(PipelineLoadError) as info:
        load_pipelines({}, tmp_path)
    message = str(info.value)
    assert "2 pipeline spec file(s)" in message and "held back until fixed: other__ingest" in message
    where = f"{tmp_path / 'churn.yaml'}: line 1, field 'pipeline'"
    assert f"{where}: pipeline 'churn' is also defined by churn.yml" in message
    target: dict = {}
    assert load_pipelines(target, tmp_path, on_error="skip") == ["other__ingest"]
    with pytest.raises(PipelineLoadError, match=r"also defined by churn\.yaml"):
        report_spec_errors(tmp_path)
    problems = check_spec_files([tmp_path])
    assert problems == [
        f"{tmp_path / 'churn.yaml'}:1: pipeline: pipeline 'churn' is also defined by churn.yml in the "
        "same folder: one file per pipeline; remove or rename one (neither is built until then)",
        f"{tmp_path / 'churn.yml'}:1: pipeline: pipeline 'churn' is also defined by churn.yaml in the "
        "same folder: one file per pipeline; remove or rename one (neither is built until then)",
    ]


def test_validate_reports_problems(tmp_path: Path) -> None:
    good = _write(tmp_path / "ok", "good.yaml", SPEC)
    assert check_spec_files([good]) == []
    bad = _write(tmp_path / "ko", "bad.yaml", SPEC + "retries: many\n")
    problems = check_spec_files([tmp_path / "ko"])
    assert len(problems) == 1 and problems[0].startswith(f"{bad}:2: retries: "), problems  # file:line: field: ...
    assert "not a spec file" in check_spec_files([tmp_path / "x.json"])[0]


def test_preprocess_starts_the_training_dag(tmp_path: Path) -> None:
    spec = parse_spec(
        SPEC + "quality: {suite: churn_raw, engine: spark}\n"
        "preprocess: {sql: features.sql, key_column: id, params: {n: 3}, full_rebuild: true,\n"
        "             splits: {train: 0.7, validation: 0.2, test: 0.1}}\n",
        default_pipeline="p",
    )
    dags = _dags(spec, source=str(tmp_path / "p.yaml"))
    gate = dags["ingest"].get_task("quality_gate")
    assert gate.upstream_task_ids == {"ingest_kafka"}
    assert gate.suite == "churn_raw" and gate.engine == "spark"
    training = dags["training"]
    pre = training.get_task("preprocess")
    assert pre.upstream_task_ids == set() and pre.full_rebuild is True
    assert pre.sql == str(tmp_path / "features.sql")
    assert pre.transform_params == {"n": 3} and pre.splits == {"train": 0.7, "validation": 0.2, "test": 0.1}
    assert [o.name for o in pre.outlets] == ["mlops_ops.p.features"]
    # the training DAG runs on each batch published to raw (the ingest DAG's Asset), never ingests itself
    assert training.timetable.asset_condition.name == raw_asset_name("p")
    assert not [t for t in training.tasks if t.task_id.startswith("ingest")]


TRAINING = (
    "preprocess: {transform: 'm.mod:f', key_column: id}\n"
    "train: {trainer: torch_mlp, task: binary, target: churned, params: {epochs: 3},\n"
    "        executor: kubernetes, image: reg/trainer:1, resources: {gpus: 1, memory: 8Gi},\n"
    "        node_selector: {pool: gpu}, tolerations: [{key: nvidia.com/gpu, operator: Exists}]}\n"
    "evaluate: {metrics: [roc_auc, accuracy], thresholds: {roc_auc: {min: 0.7}}, max_regression: {accuracy: 0.01},\n"
    "           slice_column: contract}\n"
    "promote: {model_name: churn-model}\n"
)


def test_train_evaluate_promote_tasks() -> None:
    from mlops_ops.operators.evaluate import EvaluateModelOperator, PromoteModelOperator
    from mlops_ops.operators.train_kubernetes import TrainModelKubernetesOperator

    dag = _dags(parse_spec(SPEC + TRAINING, default_pipeline="p"), source="p.yaml")["training"]
    assert [t.task_id for t in dag.tasks] == ["preprocess", "train", "evaluate", "promote"]
    train, evaluate, promote = dag.get_task("train"), dag.get_task("evaluate"), dag.get_task("promote")
    # the backend is chosen once, in the plan: executor kubernetes -> the KubernetesPodOperator subclass
    assert isinstance(train, TrainModelKubernetesOperator) and train.upstream_task_ids == {"preprocess"}
    assert train.training.model_name == "churn-model" and train.training.trainer == "torch_mlp"
    assert train.image == "reg/trainer:1" and train.container_spec.resources.gpus == 1
    assert [t.model_dump(exclude_none=True) for t in train.container_spec.tolerations] == [
        {"key": "nvidia.com/gpu", "operator": "Exists"}
    ]
    assert train.node_selector == {"pool": "gpu"} and train.namespace == "default"
    assert isinstance(evaluate, EvaluateModelOperator) and evaluate.thresholds == {"roc_auc": {"min": 0.7, "max": None}}
    assert evaluate.max_regression == {"accuracy": 0.01} and evaluate.slice_column == "contract"
    assert isinstance(promote, PromoteModelOperator) and [o.name for o in promote.outlets] == ["mlops_ops.p.model"]
    assert "train_params" in dag.params and "replay_of" in dag.params


def test_approval_sits_between_evaluate_and_promote() -> None:
    from datetime import timedelta

    from mlops_ops.operators.approve import ApproveModelOperator

    approval = "promote: {model_name: churn-model, approval: {timeout: 2h, approvers: [alice, bob]}}\n"
    spec = parse_spec(SPEC + TRAINING.replace("promote: {model_name: churn-model}\n", approval), default_pipeline="p")
    dag = _dags(spec, source="p.yaml")["training"]
    assert [t.task_id for t in dag.tasks] == ["preprocess", "train", "evaluate", "approve", "promote"]
    approve, promote = dag.get_task("approve"), dag.get_task("promote")
    assert isinstance(approve, ApproveModelOperator) and approve.upstream_task_ids == {"evaluate"}
    assert approve.response_timeout == timedelta(hours=2) and approve.defaults == ["Reject"]  # timeout = reject
    assert approve.assigned_users == [{"id": "alice", "name": "alice"}, {"id": "bob", "name": "bob"}]
    assert approve.retries == 0 and "comment" in approve.params
    assert promote.upstream_task_ids == {"approve"} and promote.require_approval is True
    assert "approves the blessed challenger" in (dag.doc_md or "")
    # required: false (a dev deployment of the same spec): no approval task, promotion as before
    off = parse_spec(SPEC + TRAINING.replace("promote: {model_name: churn-model}\n",
                                             "promote: {model_name: m, approval: {required: false}}\n"),
                     default_pipeline="p")  # fmt: skip
    dag = _dags(off, source="p.yaml")["training"]
    assert "approve" not in dag.task_ids and dag.get_task("promote").require_approval is False
    with pytest.raises(SpecError, match="on_timeout"):
        parse_spec(SPEC + TRAINING.replace("promote: {model_name: churn-model}\n",
                                           "promote: {model_name: m, approval: {on_timeout: approve}}\n"),
                   default_pipeline="p")  # fmt: skip


def test_train_needs_a_feature_table() -> None:
    with pytest.raises(SpecError, match="stage 'train' needs stage 'preprocess'"):
        parse_spec(SPEC + "train: {trainer: sklearn, task: regression, target: y}\n", default_pipeline="p")


def test_drift_dag_and_retraining_triggers_from_example_spec() -> None:
    from airflow.sdk import AssetAny

    from mlops_ops._compat import asset_or_time_schedule

    AssetOrTimeSchedule = asset_or_time_schedule()

    from mlops_ops.naming import control_asset_name, drift_asset_name
    from mlops_ops.operators.drift import DriftCheckOperator, DriftSignalOperator
    from mlops_ops.triggers.control import ControlTopicTrigger

    spec = load_spec(ROOT / "dags" / "pipelines" / "churn.yaml")
    _, training, drift = build_dags(spec, source="dags/pipelines/churn.yaml")
    assert drift.dag_id == "churn__drift" and drift.max_active_runs == 1
    assert [t.task_id for t in drift.tasks] == ["drift_check", "drift_signal"]  # reads raw, never ingests
    check, signal = drift.get_task("drift_check"), drift.get_task("drift_signal")
    assert isinstance(check, DriftCheckOperator) and isinstance(signal, DriftSignalOperator)
    assert (check.model_name, check.key_column, check.target) == ("churn", "customer_id", "churned")
    assert check.transform == "mlops_ops.examples.churn:churn_features" and check.pipeline == "churn"
    assert [a.name for a in signal.outlets] == [a.name for a in signal.inlets] == [drift_asset_name("churn")]
    assert signal.cooldown == "6h" and signal.retries == 0
    # churn.yaml (retrain.on_new_data: false): the training DAG runs on a drift signal OR a control-topic request
    condition = training.timetable.asset_condition
    assert isinstance(condition, AssetAny) and not isinstance(training.timetable, AssetOrTimeSchedule)
    by_name = {a.name: a for a in condition.objects}
    assert set(by_name) == {drift_asset_name("churn"), control_asset_name("churn")}
    assert by_name[drift_asset_name("churn")].watchers == []
    (watcher,) = by_name[control_asset_name("churn")].watchers
    assert isinstance(watcher.trigger, ControlTopicTrigger)
    assert watcher.trigger.serialize()[1] == {"pipeline": "churn", "topic": "mlops-ops.control",
                                              "kafka_config_id": "kafka_control", "poll_interval": 1.0,
                                              "cooldown_s": 3600.0}  # fmt: skip
    assert set(training.params) == {"train_params", "replay_of", "reason"}
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
    spec = parse_spec(base + "retrain: {control_topic: ctl, on_new_data: false}\n", default_pipeline="p")
    dag = _dags(spec)["training"]
    from airflow.sdk import Asset

    assert isinstance(dag.timetable.asset_condition, Asset)  # the control-topic Asset alone schedules it
    assert dag.timetable.asset_condition.name == "mlops_ops.p.retrain_request"


def test_every_stage_has_an_execution_timeout_the_spec_can_change() -> None:
    from datetime import timedelta

    dags = _dags(parse_spec(SPEC + TRAINING, default_pipeline="p"), source="p.yaml")
    timeouts = {t.task_id: t.execution_timeout for d in dags.values() for t in d.tasks}
    assert timeouts["ingest_kafka"] == timedelta(hours=1) and timeouts["preprocess"] == timedelta(hours=2)
    assert timeouts["train"] == timedelta(hours=12) and timeouts["evaluate"] == timedelta(hours=1)
    assert timeouts["promote"] == timedelta(minutes=15)
    assert all(value is not None for value in timeouts.values()), timeouts

    changed = parse_spec(SPEC + TRAINING + "timeouts: {train: 30m, ingest: 2d}\n", default_pipeline="p")
    dags = _dags(changed, source="p.yaml")
    assert dags["training"].get_task("train").execution_timeout == timedelta(minutes=30)
    assert dags["ingest"].get_task("ingest_kafka").execution_timeout == timedelta(days=2)
    assert dags["training"].get_task("evaluate").execution_timeout == timedelta(hours=1)  # others keep defaults

    with pytest.raises(SpecError, match=r"timeouts\.train"):
        parse_spec(SPEC + TRAINING + "timeouts: {train: forever}\n", default_pipeline="p")
    with pytest.raises(SpecError, match=r"timeouts\.trian"):
        parse_spec(SPEC + TRAINING + "timeouts: {trian: 1h}\n", default_pipeline="p")


def test_trigger_time_hyper_parameters_are_bounded_by_the_trainers_schema() -> None:
    import copy

    from mlops_ops._compat import airflow_exception

    ParamValidationError = airflow_exception("ParamValidationError")

    dag = _dags(parse_spec(SPEC + TRAINING, default_pipeline="p"), source="p.yaml")["training"]

    def refused(conf: dict) -> bool:  # what the REST API and the trigger form do with a run's conf
        params = copy.deepcopy(dag.params)
        try:
            for key, value in conf.items():
                params[key] = value
            params.validate()
        except ParamValidationError:
            return True
        return False

    assert not refused({"train_params": {"epochs": 4, "lr": 0.001}})
    assert not refused({"train_params": {"epochs": 1500, "patience": 100000}})  # no early stop: epochs bound the run
    assert refused({"train_params": {"epochs": 1e9}})  # torch_mlp: epochs ≤ 10,000
    assert refused({"train_params": {"epochs": 4, "rm_rf": True}})  # a key the trainer does not take
    assert refused({"train_params": {"hidden": [64] * 100}})

    sklearn = TRAINING.replace("trainer: torch_mlp", "trainer: sklearn").replace("params: {epochs: 3}", "params: {}")
    dag = _dags(parse_spec(SPEC + sklearn, default_pipeline="p"), source="p.yaml")["training"]
    assert not refused({"train_params": {"max_iter": 200, "class_weight": {"0": 1, "1": 5}}})
    assert refused({"train_params": {f"k{i}": 1 for i in range(65)}})
    assert refused({"train_params": {"max_iter": 1e12}})
    assert refused({"train_params": {"x": "a" * 10_000}})
    assert refused({"train_params": {"estimator": "antigravity.Fly"}})  # imports nothing outside scikit-learn (N9)
    assert not refused({"train_params": {"estimator": "sklearn.linear_model.LogisticRegression"}})

    with pytest.raises(SpecError, match=r"train\.params.*epochs"):
        parse_spec(SPEC + TRAINING.replace("params: {epochs: 3}", "params: {epochs: 0}"), default_pipeline="p")
    schema = "{properties: {rounds: {type: integer, maximum: 50}}, additionalProperties: false}"
    custom = TRAINING.replace("trainer: torch_mlp", "trainer: 'team.train:fit'").replace(
        "params: {epochs: 3}", "params: {rounds: 3}, params_schema: " + schema
    )
    dag = _dags(parse_spec(SPEC + custom, default_pipeline="p"), source="p.yaml")["training"]
    assert not refused({"train_params": {"rounds": 50}}) and refused({"train_params": {"rounds": 51}})
    with pytest.raises(SpecError, match=r"train\.params_schema"):
        parse_spec(SPEC + custom.replace("type: integer", "type: integr"), default_pipeline="p")
