"""Validate one ingested batch against a GX suite, summarise the outcome, publish Data Docs.

Severity comes from GX itself (``severity`` on each expectation, GX ≥ 1.5): ``critical``
failures block the batch, ``warning`` and ``info`` failures are logged and let it pass.
Large batches are validated on Spark (never collected to pandas); small ones on pandas.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_ops.lake.reading import read_files
from mlops_ops.lake.spark_io import spark_readable
from mlops_ops.lake.store import Dataset

PANDAS_MAX_ROWS = 200_000
DOCS_FOLDER = "_data_docs"


@dataclass
class GateOutcome:
    passed: bool
    engine: str
    rows: int
    evaluated: int
    blocking: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    result_id: str | None = None
    docs_path: str | None = None
    assertions: list[dict[str, Any]] = field(default_factory=list)  # every expectation: {assertion, success, column}

    def summary(self, limit: int = 20) -> dict[str, Any]:
        """XCom-sized: counts plus the first ``limit`` failures of each kind."""
        return {"passed": self.passed, "engine": self.engine, "rows": self.rows, "evaluated": self.evaluated,
                "blocking": self.blocking[:limit], "warnings": self.warnings[:limit],
                "blocking_count": len(self.blocking), "warning_count": len(self.warnings),
                "result_id": self.result_id, "docs_path": self.docs_path,
                "assertions": self.assertions[:200]}  # fmt: skip


def choose_engine(requested: str, rows: int) -> str:
    if requested != "auto":
        return requested
    return "pandas" if rows <= PANDAS_MAX_ROWS else "spark"


def assertion_of(result: Any) -> dict[str, Any]:
    """One expectation's outcome as OpenLineage's data-quality assertion: ``{assertion, success, column}``."""
    config = result.expectation_config
    column = (getattr(config, "kwargs", None) or {}).get("column")
    return {"assertion": str(config.type), "success": bool(result.success),
            "column": str(column) if column is not None else None}  # fmt: skip


def describe_failure(result: Any) -> dict[str, Any]:
    """Column, expectation, severity and what was observed, for one failed expectation result."""
    config = result.expectation_config
    got = result.result or {}
    observed: Any = got.get("observed_value")
    if observed is None and got.get("unexpected_count") is not None:
        observed = {"unexpected_count": got.get("unexpected_count"),
                    "unexpected_percent": round(float(got.get("unexpected_percent") or 0.0), 3),
                    "sample": [_plain(v) for v in (got.get("partial_unexpected_list") or [])[:5]]}  # fmt: skip
    if observed is None and result.exception_info and result.exception_info.get("raised_exception"):
        observed = {"error": str(result.exception_info.get("exception_message", ""))[:300]}
    kwargs = config.kwargs or {}
    severity = getattr(config, "severity", None) or "critical"
    return {"expectation": config.type, "column": kwargs.get("column") or kwargs.get("column_list"),
            "severity": str(getattr(severity, "value", severity)), "observed": _plain(observed),
            "expected": {k: _plain(v) for k, v in kwargs.items() if k not in ("column", "batch_id")}}  # fmt: skip


def _plain(value: Any) -> Any:
    """JSON-safe: numpy scalars become Python ones, NaN (pandas' missing value) becomes None."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain(v) for v in value]
    return str(value)


def validate_files(
    hook: Any,
    context: Any,
    suite: str,
    io: Any,
    files: list[str],
    rows: int,
    *,
    engine: str = "auto",
    spark: Any = None,
    local_session: bool = True,
) -> tuple[GateOutcome, Any]:
    """Run checkpoint ``<suite>.<engine>`` over exactly the data files of one staged batch."""
    engine = choose_engine(engine, rows)
    checkpoint = hook.checkpoint(context, suite, engine)
    if engine == "spark":
        if spark is None:
            raise ValueError("the spark engine needs a Spark session")
        with spark_readable(files, local_session=local_session, io=io) as paths:
            result = checkpoint.run(
                batch_parameters={"dataframe": spark.read.option("mergeSchema", "true").parquet(*paths)}
            )
    else:
        result = checkpoint.run(batch_parameters={"dataframe": read_files(io, files)})
    result_id, validation = next(iter(result.run_results.items()))
    blocking: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    for item in validation.results:
        if item.success:
            continue
        failure = describe_failure(item)
        (blocking if failure["severity"] == "critical" else warnings).append(failure)
    outcome = GateOutcome(passed=not blocking, engine=engine, rows=rows, evaluated=len(validation.results),
                          blocking=blocking, warnings=warnings, result_id=str(result_id),
                          assertions=[assertion_of(item) for item in validation.results])  # fmt: skip
    return outcome, result_id


def publish_data_docs(context: Any, result_id: Any, docs: Dataset) -> str:
    """Render Data Docs for one validation result and copy the site into the lake.

    GX writes the site to a scratch folder through a site added to this context in memory
    only (the project's ``great_expectations.yml`` is not rewritten by tasks); the files are
    then copied with the lake's connection, so the same code serves local and S3 lakes.
    Returns the validation page's path relative to the site root.
    """
    scratch = Path(tempfile.mkdtemp(prefix="mlops-ops-docs-"))
    try:
        sites = dict(context.config.data_docs_sites or {})
        sites["mlops_ops_lake"] = {
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(scratch) + "/"},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
        context.variables.data_docs_sites = sites
        context.build_data_docs(site_names=["mlops_ops_lake"], resource_identifiers=[result_id])
        urls = context.get_docs_sites_urls(resource_identifier=result_id, site_names=["mlops_ops_lake"])
        page = urls[0]["site_url"].split(str(scratch), 1)[1].lstrip("/") if urls else "index.html"
        for local in sorted(p for p in scratch.rglob("*") if p.is_file()):
            parts = local.relative_to(scratch).parts
            target = docs.path(*parts)
            if parts[0] == "static" and target.exists():
                continue  # stylesheets and scripts do not change between runs
            if target.protocol in ("file", "local"):
                target.parent.mkdir(parents=True, exist_ok=True)
            with local.open("rb") as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        return page
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
