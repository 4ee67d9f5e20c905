"""The Airflow plugin of mlops-ops (entry point ``airflow.plugins``).

Adds "ML pipelines" (the overview page) and a link to the MLflow UI to the Airflow navigation
bar, and mounts ``/mlops-ops`` on the API server (see :mod:`mlops_ops.ui.app`): the overview,
the quality gate's Data Docs, drift reports and lake snapshots, read from the lake.
The MLflow URL comes from
``MLOPS_OPS_MLFLOW_UI_URL``, else ``MLFLOW_TRACKING_URI`` (what ``mlops-ops stack env`` exports), read once when the
plugin loads, so no database or network call happens at import time.
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin


def _external_views() -> list[dict[str, str]]:
    views = [{"name": "ML pipelines", "href": "/mlops-ops/pipelines", "destination": "nav",
              "url_route": "ml-pipelines"}]  # fmt: skip
    uri = os.environ.get("MLOPS_OPS_MLFLOW_UI_URL") or os.environ.get("MLFLOW_TRACKING_URI", "")
    if uri.startswith(("http://", "https://")):
        views.append({"name": "MLflow", "href": uri.rstrip("/") + "/", "destination": "nav", "url_route": "mlflow"})
    return views


def _fastapi_apps() -> list[dict[str, object]]:
    from mlops_ops.ui.app import app

    return [{"app": app, "url_prefix": "/mlops-ops", "name": "mlops-ops"}]


class MlopsOpsPlugin(AirflowPlugin):
    name = "mlops_ops"
    external_views = _external_views()
    fastapi_apps = _fastapi_apps()
