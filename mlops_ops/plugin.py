"""The Airflow plugin of mlops-ops (entry point ``airflow.plugins``).

Adds a link to the MLflow UI in the Airflow navigation bar, and mounts ``/mlops-ops`` on the
API server: the quality gate's Data Docs, read from the lake (see :mod:`mlops_ops.ui.data_docs`).
The MLflow URL comes from
``MLFLOW_TRACKING_URI`` (what ``mlops-ops stack env`` exports), read once when the
plugin loads, so no database or network call happens at import time.
"""

from __future__ import annotations

import os

from airflow.plugins_manager import AirflowPlugin


def _external_views() -> list[dict[str, str]]:
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not uri.startswith(("http://", "https://")):
        return []
    return [{"name": "MLflow", "href": uri.rstrip("/") + "/", "destination": "nav", "url_route": "mlflow"}]


def _fastapi_apps() -> list[dict[str, object]]:
    from mlops_ops.ui.data_docs import app

    return [{"app": app, "url_prefix": "/mlops-ops", "name": "mlops-ops"}]


class MlopsOpsPlugin(AirflowPlugin):
    name = "mlops_ops"
    external_views = _external_views()
    fastapi_apps = _fastapi_apps()
