"""The plugin's FastAPI app, mounted at ``/mlops-ops`` on Airflow's API server.

Routes: Data Docs and drift reports (:mod:`mlops_ops.ui.data_docs`), lake manifests (the
ingest and preprocess tasks' "Lake manifest" link) and the pipelines overview. All behind
Airflow's login; a user sees only the pipelines whose training DAG they may read.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from mlops_ops.ui import data_docs
from mlops_ops.ui.data_docs import app
from mlops_ops.ui.links import MANIFEST_PATH

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


@app.get("/lake/{pipeline}/{path:path}")
async def lake_manifest(pipeline: str, path: str, request: Request) -> Response:
    """A manifest of the pipeline's lake (``<dataset>/manifests/<run>.json``); nothing else of the lake."""
    from starlette.concurrency import run_in_threadpool

    if not MANIFEST_PATH.match(path):
        raise HTTPException(status_code=404, detail="only manifests are served: <dataset>/manifests/<name>.json")
    await data_docs._check_access(request, pipeline)
    dataset, rest = path.split("/", 1)
    body, _ = await run_in_threadpool(
        lambda: data_docs.read_page(data_docs.pipeline_lake(pipeline), pipeline, rest, folder=dataset)
    )
    return Response(content=body, media_type="application/json", headers={"Cache-Control": "private, max-age=60"})
