"""The trust model of spec callables (mlops_ops.callables): what a spec may name, checked when it is parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ops.callables import NEVER, UntrustedCallableError, load_callable, trust_problem
from mlops_ops.exceptions import SpecError
from mlops_ops.spec_loader import parse_spec

KAFKA = "source: {{kafka: {{topics: [a], schema: {{id: string}}, deserializer: '{path}'}}}}\n"


@pytest.mark.parametrize("path", ["builtins:eval", "builtins:exec", "pickle:loads", "os:system", "subprocess:run",
                                  "yaml:unsafe_load", "marshal:loads", "importlib:import_module", "os.path:join",
                                  "_pickle:loads", "shutil:rmtree", "runpy:run_path"])  # fmt: skip
def test_modules_that_evaluate_unpickle_or_spawn_are_refused(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS_OPS__ALLOWED_CALLABLE_MODULES", "builtins,pickle,os,subprocess,yaml")
    with pytest.raises(SpecError, match=r"source\.kafka\.deserializer.*can evaluate, unpickle or run programs"):
        parse_spec(KAFKA.format(path=path), default_pipeline="p")
    with pytest.raises(UntrustedCallableError):  # and again where it would be loaded (the training runtime too)
        load_callable(path, field="deserializer")


def test_modules_outside_the_allow_list_are_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS_OPS__ALLOWED_CALLABLE_MODULES", "team_ml, gallery_lib")
    with pytest.raises(SpecError, match=r"allowed_callable_modules lists gallery_lib, team_ml"):
        parse_spec(KAFKA.format(path="json:loads"), default_pipeline="p")
    assert trust_problem("team_ml.decoders:avro") is None  # a prefix admits its submodules
    assert trust_problem("team_ml_evil:x") is not None  # ... not names that merely start alike
    assert trust_problem("mlops_ops.lake.records:json_decoder") is None  # the library itself
    spec = parse_spec(KAFKA.format(path="mlops_ops.lake.records:json_decoder"), default_pipeline="p")
    assert spec.source is not None and spec.source.kafka is not None


def test_code_in_the_dags_folder_is_trusted_without_configuration(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv("AIRFLOW__MLOPS_OPS__ALLOWED_CALLABLE_MODULES", raising=False)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path))
    (tmp_path / "team_decoders.py").write_text("def decode(value):\n    return {'id': value.decode()}\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # Airflow puts the DAGs folder on sys.path
    parse_spec(KAFKA.format(path="team_decoders:decode"), default_pipeline="p")
    outside = tmp_path.parent / f"elsewhere_{tmp_path.name}"
    outside.mkdir()
    (outside / "stray_code.py").write_text("def decode(value):\n    return {}\n")
    monkeypatch.syspath_prepend(str(outside))
    with pytest.raises(SpecError, match="'stray_code' is not trusted"):
        parse_spec(KAFKA.format(path="stray_code:decode"), default_pipeline="p")


@pytest.mark.parametrize(
    ("yaml", "field"),
    [
        ("preprocess: {transform: 'pickle:loads', key_column: id}\n", r"preprocess\.transform"),
        ("preprocess: {transform: 'mlops_ops.examples.churn:churn_features', key_column: id}\n"
         "train: {trainer: 'subprocess:call', task: binary, target: y}\n", r"train\.trainer"),
        ("preprocess: {transform: 'mlops_ops.examples.churn:churn_features', key_column: id}\n"
         "train: {trainer: sklearn, task: binary, target: y}\n"
         "evaluate: {metrics: [m], custom_metrics: {m: {function: 'builtins:eval'}}}\n",
         r"evaluate\.custom_metrics\.m\.function"),
    ],
)  # fmt: skip
def test_every_callable_field_is_checked(yaml: str, field: str) -> None:
    with pytest.raises(SpecError, match=field):
        parse_spec("source: {kafka: {topics: [a], schema: {id: string}}}\n" + yaml, default_pipeline="p")


def test_the_never_list_covers_the_named_modules() -> None:
    assert {"builtins", "pickle", "os", "subprocess", "yaml"} <= NEVER
