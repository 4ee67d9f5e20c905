from __future__ import annotations

from importlib.metadata import entry_points

from mlops_ops.plugin import MlopsOpsPlugin, _external_views


def test_registered_as_airflow_provider() -> None:
    from airflow.providers_manager import ProvidersManager

    try:  # where tasks look hooks up (Airflow 3.2+); Airflow 3.1 has the one manager
        from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as HookManager
    except ImportError:
        HookManager = ProvidersManager  # type: ignore[assignment,misc]

    assert "mlops-ops" in ProvidersManager().providers
    hook = HookManager().hooks["mlflow"]
    assert hook is not None and hook.hook_class_name == "mlops_ops.hooks.mlflow.MlflowHook"


def test_registered_as_airflow_plugin() -> None:
    points = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    assert points["mlops_ops"] == "mlops_ops.plugin:MlopsOpsPlugin"
    assert MlopsOpsPlugin.name == "mlops_ops"


def test_plugin_adds_the_overview_and_links_mlflow_ui(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    overview = {
        "name": "ML pipelines",
        "href": "/mlops-ops/pipelines",
        "destination": "nav",
        "url_route": "ml-pipelines",
    }
    monkeypatch.delenv("MLOPS_OPS_MLFLOW_UI_URL", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5123")
    assert _external_views() == [
        overview,
        {"name": "MLflow", "href": "http://127.0.0.1:5123/", "destination": "nav", "url_route": "mlflow"},
    ]
    monkeypatch.setenv("MLOPS_OPS_MLFLOW_UI_URL", "https://mlflow.example.com")  # browsers reach it elsewhere
    assert _external_views()[1]["href"] == "https://mlflow.example.com/"
    monkeypatch.delenv("MLOPS_OPS_MLFLOW_UI_URL")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")
    assert _external_views() == [overview]


def test_missing_extra_names_the_pip_command() -> None:
    import pytest

    from mlops_ops._extras import require
    from mlops_ops.exceptions import MissingExtraError

    with pytest.raises(MissingExtraError, match=r"pip install 'mlops-ops\[spark\]'"):
        require("not_installed_module_xyz", "spark")


def test_provider_info_validates_against_airflows_schema_and_names_every_class() -> None:
    import importlib
    import json
    from pathlib import Path

    import airflow
    import jsonschema

    from mlops_ops.provider_info import get_provider_info

    info = get_provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)

    modules = {kind: {m for entry in info.get(kind, []) for m in entry["python-modules"]}
               for kind in ("operators", "hooks", "triggers")}  # fmt: skip
    assert {"mlops_ops.operators.drift", "mlops_ops.operators.approve", "mlops_ops.operators.train_docker",
            "mlops_ops.operators.train_kubernetes"} <= modules["operators"]  # fmt: skip
    assert "mlops_ops.operators.openlineage" not in modules["operators"]  # helpers, no operator class
    assert modules["triggers"] == {"mlops_ops.triggers.sources", "mlops_ops.triggers.control"}
    assert modules["hooks"] == {f"mlops_ops.hooks.{n}" for n in ("gx", "iceberg", "kafka", "mlflow", "spark")}
    integrations = {i["integration-name"] for i in info["integrations"]}
    for kind in ("operators", "hooks", "triggers"):
        assert {entry["integration-name"] for entry in info[kind]} <= integrations
        for module in modules[kind]:
            importlib.import_module(module)

    assert {c["connection-type"]: c["hook-class-name"] for c in info["connection-types"]} == {
        "mlflow": "mlops_ops.hooks.mlflow.MlflowHook",
        "iceberg": "mlops_ops.hooks.iceberg.IcebergCatalogHook",
        "mlops_spark": "mlops_ops.hooks.spark.SparkHook",
    }
    for entry in info["connection-types"]:
        module, name = entry["hook-class-name"].rsplit(".", 1)
        hook = getattr(importlib.import_module(module), name)
        assert (hook.conn_type, hook.hook_name) == (entry["connection-type"], entry["hook-name"])

    from airflow.sdk import BaseOperatorLink

    assert len(info["extra-links"]) == 5
    for path in info["extra-links"]:
        module, name = path.rsplit(".", 1)
        link = getattr(importlib.import_module(module), name)
        assert issubclass(link, BaseOperatorLink) and link.name  # each has its button label


def test_a_new_operator_module_is_listed_without_editing_provider_info(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import shutil

    from mlops_ops import provider_info

    package = tmp_path / "mlops_ops"
    shutil.copytree(provider_info.PACKAGE, package, ignore=shutil.ignore_patterns("__pycache__"))
    (package / "operators" / "score.py").write_text(
        "from airflow.sdk import BaseOperator, BaseOperatorLink\n"
        "class ScoreLink(BaseOperatorLink):\n    name = 'Scores'\n"
        "class BatchScoreOperator(BaseOperator):\n    pass\n"
    )
    (package / "hooks" / "feast.py").write_text(
        "from airflow.sdk import BaseHook\n"
        "class FeastHook(BaseHook):\n    conn_type = 'feast'\n    hook_name = 'Feast'\n"
    )
    monkeypatch.setattr(provider_info, "PACKAGE", package)
    provider_info._derived.cache_clear()
    try:
        info = provider_info.get_provider_info()
    finally:
        provider_info._derived.cache_clear()
    assert {"integration-name": "mlops-ops lake", "python-modules": ["mlops_ops.operators.score"]} in info["operators"]
    assert "mlops_ops.operators.score.ScoreLink" in info["extra-links"]
    assert {"hook-class-name": "mlops_ops.hooks.feast.FeastHook", "connection-type": "feast",
            "hook-name": "Feast"} in info["connection-types"]  # fmt: skip


def test_airflow_providers_get_shows_it() -> None:
    import json
    import subprocess
    import sys
    from pathlib import Path

    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run([str(airflow), "providers", "get", "mlops-ops", "--full", "-o", "json"],
                         capture_output=True, text=True, check=True, timeout=120).stdout  # fmt: skip
    shown = json.loads(out)
    provider = shown[0] if isinstance(shown, list) else shown
    text = json.dumps(provider)
    for name in ("mlops_ops.operators.drift", "mlops_ops.triggers.control", "mlops_ops.hooks.kafka",
                 "mlops_ops.operators.approve", "DriftReportLink", "\"iceberg\""):  # fmt: skip
        assert name in text, name
