"""The plugin's FastAPI app, mounted at ``/mlops-ops`` on Airflow's API server.

Routes: Data Docs and drift reports (:mod:`mlops_ops.ui.data_docs`), lake snapshots (the
ingest, gate and preprocess tasks' "Lake snapshot" link) and the pipelines overview. All behind
Airflow's login; a user sees only the pipelines whose training DAG they may read.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

from mlops_ops.ui import data_docs
from mlops_ops.ui.data_docs import app
from mlops_ops.ui.links import SNAPSHOT_PATH

__all__ = ["app"]


def _readable_dag_ids(user: Any) -> set[str]:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_authorized_dag_ids(user=user, method="GET")


def _rows(user: Any) -> list[Any]:
    from mlops_ops.ui.overview import collect

    return collect(_readable_dag_ids(user))


def _mlflow_ui() -> str:
    try:
        from mlops_ops.hooks.mlflow import MlflowHook

        return MlflowHook().ui_url()
    except Exception:  # noqa: BLE001 - no MLflow connection: the page shows versions without links
        return ""


@app.get("/pipelines", response_class=HTMLResponse)
async def pipelines_page(request: Request) -> HTMLResponse:
    from starlette.concurrency import run_in_threadpool

    from mlops_ops.ui.overview_page import render

    user = await data_docs.current_user(request)
    rows = await run_in_threadpool(_rows, user)
    ui = await run_in_threadpool(_mlflow_ui)
    return HTMLResponse(render(rows, ui), headers={"Cache-Control": "no-store"})


@app.get("/api/pipelines")
async def pipelines_json(request: Request) -> JSONResponse:
    from starlette.concurrency import run_in_threadpool

    user = await data_docs.current_user(request)
    rows = await run_in_threadpool(_rows, user)
    return JSONResponse([r.as_dict() for r in rows], headers={"Cache-Control": "no-store"})


@app.get("/lake/{pipeline}/{table}/{snapshot_id}")
async def lake_snapshot(pipeline: str, table: str, snapshot_id: str, request: Request) -> JSONResponse:
    """One snapshot of one of the pipeline's tables: summary, refs, files added and removed."""
    import re

    from starlette.concurrency import run_in_threadpool

    from mlops_ops.spec import IDENTIFIER
    from mlops_ops.ui.lake_page import snapshot_document

    if not re.match(IDENTIFIER, pipeline) or not SNAPSHOT_PATH.match(f"{table}/{snapshot_id}"):
        raise HTTPException(status_code=404, detail="no such snapshot: /lake/<pipeline>/<table>/<snapshot id>")
    await data_docs._check_access(request, pipeline)
    body = await run_in_threadpool(snapshot_document, pipeline, table, int(snapshot_id))
    if body is None:
        raise HTTPException(status_code=404, detail=f"no snapshot {snapshot_id} of {pipeline}.{table}")
    return JSONResponse(body, headers={"Cache-Control": "private, max-age=60"})
