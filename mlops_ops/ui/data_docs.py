"""Serve each pipeline's Great Expectations Data Docs and drift reports from the lake, behind Airflow's login.

Mounted by the plugin at ``/mlops-ops``: ``GET /mlops-ops/data-docs/<pipeline>/<path>``
reads ``<lake>/<pipeline>/_data_docs/<path>`` through the lake's connection (local disk or
S3), so the quality gate's task link works wherever the lake is. A user sees a pipeline's
docs when Airflow's auth manager lets them read its training DAG (docs show sample values).

Pages in the lake are written by tasks from data: they are served from Airflow's origin only inside a CSP sandbox.
Data Docs run no script at all; Evidently reports need theirs, which run in an opaque origin (no cookies, no
Airflow API, no network: ``connect-src 'none'``). Every request path is checked segment by segment first: ``.``,
``..``, backslashes and control characters (also percent-encoded) are a 404 on every route.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse

MAX_BYTES = 50 << 20
_LOCKED = "default-src 'none'; img-src data: https:; style-src 'unsafe-inline' https:; font-src data: https:; " \
          "frame-ancestors 'self'; form-action 'none'; base-uri 'none'"  # fmt: skip
DOCS_CSP = "sandbox; " + _LOCKED  # Data Docs: no script runs
REPORT_CSP = "sandbox allow-scripts; script-src 'unsafe-inline' 'unsafe-eval'; connect-src 'none'; " + _LOCKED.replace(
    "img-src data: https:", "img-src data: blob: https:"
)  # Evidently's report renders with its own inline scripts, in an opaque origin
PAGE_HEADERS = {"Cache-Control": "private, max-age=60", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer"}  # fmt: skip

app = FastAPI(title="mlops-ops", docs_url=None, redoc_url=None, openapi_url=None)


def bad_segment(path: str) -> bool:
    """Whether a request path has a segment no route accepts: ``.``, ``..``, a backslash or a control character,
    as sent or percent-decoded (once or twice)."""
    for text in (path, unquote(path), unquote(unquote(path))):
        for segment in text.split("/"):
            if segment in (".", "..") or "\\" in segment or any(ord(ch) < 32 or ord(ch) == 127 for ch in segment):
                return True
    return False


@app.middleware("http")
async def refuse_bad_segments(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    raw = request.scope.get("raw_path") or request.url.path.encode()
    if bad_segment(raw.decode("latin-1")) or bad_segment(request.url.path):
        return JSONResponse({"detail": "no such page"}, status_code=404)  # as the routes' own 404s
    return await call_next(request)


async def current_user(request: Request) -> Any:
    """The signed-in user, as Airflow's API resolves it (bearer header first, else the UI's cookie)."""
    from airflow.api_fastapi.core_api.security import COOKIE_NAME_JWT_TOKEN, resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    return await resolve_user_from_token(token)  # raises 401/403 for a missing or bad token


async def _check_access(request: Request, pipeline: str) -> None:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    from mlops_ops.naming import training_dag_id
    from mlops_ops.spec import IDENTIFIER

    if not re.match(IDENTIFIER, pipeline):  # before the login check: a bad name says nothing about who may read
        raise HTTPException(status_code=404, detail="no such pipeline")
    user = await current_user(request)

    details = DagDetails(id=training_dag_id(pipeline))
    if not get_auth_manager().is_authorized_dag(method="GET", details=details, user=user):
        raise HTTPException(status_code=403, detail=f"not allowed to read pipeline '{pipeline}'")


def lake_uri() -> str:
    from airflow.sdk import Variable

    from mlops_ops.exceptions import LakeNotConfiguredError

    uri = str(Variable.get("mlops_ops_lake", default=""))
    if not uri:
        raise HTTPException(status_code=503, detail=str(LakeNotConfiguredError()))
    return uri


def pipeline_lake(pipeline: str) -> str:
    """The pipeline's lake: the one its DAGs' tasks were built with when the spec sets ``lake:`` (the quality gate of
    the ingest DAG and the drift check of the drift DAG carry it as a template field), else the Variable."""
    from mlops_ops.naming import drift_dag_id, ingest_dag_id, training_dag_id

    for dag_id in (ingest_dag_id(pipeline), drift_dag_id(pipeline), training_dag_id(pipeline)):
        try:
            from airflow.models.serialized_dag import SerializedDagModel

            dag = SerializedDagModel.get_dag(dag_id)
        except Exception:  # noqa: BLE001 - no such DAG (yet) or no database: the deployment-wide lake
            dag = None
        for task in getattr(dag, "tasks", ()):
            lake = getattr(task, "lake", None)
            if isinstance(lake, str) and lake and "{{" not in lake:
                return lake
    return lake_uri()


def read_page(
    lake: str, pipeline: str, path: str, conn_id: str | None = "aws_default", *, folder: str | None = None
) -> tuple[bytes, str]:
    """The bytes and media type of one file under ``<lake>/<pipeline>/<folder>`` (Data Docs by default).

    Refuses anything outside that folder.
    """
    import re

    from mlops_ops.lake.quality import DOCS_FOLDER
    from mlops_ops.lake.store import lake_path
    from mlops_ops.spec import IDENTIFIER

    parts = [p for p in path.split("/") if p]
    if not re.match(IDENTIFIER, pipeline) or not parts or any(p in (".", "..") or "\\" in p for p in parts):
        raise HTTPException(status_code=404, detail="no such page")
    target: Any = lake_path(lake, conn_id) / pipeline
    for part in (folder or DOCS_FOLDER).split("/") + parts:
        target = target / part
    if not target.is_file():
        raise HTTPException(status_code=404, detail=f"no page {'/'.join(parts)} for pipeline {pipeline}")
    if target.stat()["size"] > MAX_BYTES:
        raise HTTPException(status_code=413, detail="page too large")
    media = mimetypes.guess_type(parts[-1])[0] or "application/octet-stream"
    return target.read_bytes(), media


@app.get("/data-docs/{pipeline}/{path:path}")
async def data_docs(pipeline: str, path: str, request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    await _check_access(request, pipeline)
    # s3fs runs its own event loop behind a sync API: call it off the server's loop, as blocking I/O anyway is
    body, media = await run_in_threadpool(lambda: read_page(pipeline_lake(pipeline), pipeline, path))
    return Response(content=body, media_type=media, headers={**PAGE_HEADERS, "Content-Security-Policy": DOCS_CSP})


@app.get("/drift-reports/{pipeline}/{path:path}")
async def drift_reports(pipeline: str, path: str, request: Request) -> Response:
    """Evidently reports of the pipeline's drift checks (``<lake>/<pipeline>/monitoring/reports/``)."""
    from starlette.concurrency import run_in_threadpool

    await _check_access(request, pipeline)
    body, media = await run_in_threadpool(
        lambda: read_page(pipeline_lake(pipeline), pipeline, path, folder="monitoring/reports")
    )
    return Response(content=body, media_type=media, headers={**PAGE_HEADERS, "Content-Security-Policy": REPORT_CSP})
