from __future__ import annotations

from importlib.metadata import entry_points

from mlops_ops.plugin import MlopsOpsPlugin, _external_views


def test_registered_as_airflow_provider() -> None:
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "mlops-ops" in ProvidersManager().providers
    hook = ProvidersManagerTaskRuntime().hooks["mlflow"]
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


def test_every_extra_link_in_provider_info_imports() -> None:
    import importlib

    from mlops_ops.provider_info import get_provider_info

    links = get_provider_info()["extra-links"]
    assert len(links) == 5
    for path in links:
        module, name = path.rsplit(".", 1)
        assert getattr(importlib.import_module(module), name).name  # each has its button label
