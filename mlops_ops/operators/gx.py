"""``QualityGateOperator``: audit each batch staged on ``raw``'s audit branches; publish or quarantine it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperatorLink

from mlops_ops.naming import DOCS_ROUTE, DOCS_XCOM_KEY, QUALITY_XCOM_KEY, safe_link
from mlops_ops.operators.base import LakeOperator
from mlops_ops.ui.links import LakeSnapshotLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)
SOURCES = ("kafka", "s3")


class DataDocsLink(BaseOperatorLink):
    """The Data Docs page of the task's validation, served by the plugin from the lake."""

    name = "Data Docs"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=DOCS_XCOM_KEY)
        return safe_link(url)


class QualityGateOperator(LakeOperator):
    """Write-audit-publish, fail-closed: validate exactly the files of each batch staged on ``raw@audit_<source>``
    against GX checkpoint ``<suite>.<engine>``; publish it to ``main`` when no *critical* expectation fails,
    otherwise copy its rows to ``raw_quarantine`` with the failures and the Data Docs page, move ``raw``'s
    position past it, and fail the task without retries so nothing downstream runs on it.

    Until this task decides a batch, nobody reads it: a gate that crashes, is killed or never runs leaves the
    batch staged, and the next attempt (or the next run) audits it. ``mlops-ops quality release`` publishes a
    quarantined batch with who and why.
    """

    template_fields: Sequence[str] = ("pipeline", "lake", "suite")
    operator_extra_links = (DataDocsLink(), LakeSnapshotLink())
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        suite: str,
        engine: Literal["auto", "spark", "pandas"] = "auto",
        context_root: str | None = None,
        spark_conn_id: str = "spark_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.suite = suite
        self.engine = engine
        self.context_root = context_root
        self.spark_conn_id = spark_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops._compat import airflow_exception

        AirflowFailException = airflow_exception("AirflowFailException")
        AirflowSkipException = airflow_exception("AirflowSkipException")

        from mlops_ops import metrics
        from mlops_ops.hooks.gx import GreatExpectationsHook
        from mlops_ops.lake import batches, transaction
        from mlops_ops.lake.quality import DOCS_FOLDER, choose_engine, publish_data_docs, validate_files
        from mlops_ops.lake.store import Dataset

        tables = self.tables()
        raw = tables.load("raw")
        staged = [b for b in (transaction.pending(raw, s) for s in SOURCES) if b is not None] if raw is not None else []
        if not staged:
            raise AirflowSkipException("no batch is staged on raw's audit branches: nothing to validate")
        docs = Dataset.at(self.lake, self.pipeline, DOCS_FOLDER, conn_id=self.aws_conn_id)
        hook = GreatExpectationsHook(self.context_root)
        gx_context = None
        results: dict[str, Any] = {}
        failed: list[str] = []
        last_snapshot = None
        for batch in staged:
            files = transaction.batch_files(raw, batch)
            rows = int(batch.summary.get("mlops.rows", 0))
            if not files:  # a batch of positions only (every message a dead letter, or a retention gap)
                last_snapshot = batches.publish(tables, raw, batch, audited=True)
                results[batch.batch_id] = {"passed": True, "rows": 0, "snapshot_id": last_snapshot,
                                           "staged_snapshot": batch.snapshot_id}  # fmt: skip
                continue
            engine = choose_engine(self.engine, rows)
            spark, local = None, True
            if engine == "spark":
                from mlops_ops.hooks.spark import SparkHook

                spark_hook = SparkHook(self.spark_conn_id, app_name=f"mlops-ops-{self.pipeline}")
                spark, local = spark_hook.get_conn(), spark_hook.session_options().stages_locally
            gx_context = gx_context or hook.get_conn()
            outcome, result_id = validate_files(
                hook, gx_context, self.suite, raw.io, files, rows, engine=engine, spark=spark, local_session=local
            )
            try:
                outcome.docs_path = publish_data_docs(gx_context, result_id, docs)
            except Exception as err:  # noqa: BLE001 - docs are a convenience; the verdict stands without them
                log.warning("Data Docs could not be published: %s", err)
            summary = outcome.summary()
            self._record(tables, context, batch, summary)  # before the decision: a retry finds the same row
            metrics.incr(self.pipeline, "quality_gate", "passed" if outcome.passed else "failed")
            metrics.gauge(self.pipeline, "quality_gate", "failed_expectations", len(outcome.blocking))
            for warning in outcome.warnings:
                log.warning(
                    "quality warning (%s): %s on %s, observed %s",
                    self.suite,
                    warning["expectation"],
                    warning["column"],
                    warning["observed"],
                )
            if outcome.passed:
                last_snapshot = batches.publish(tables, raw, batch, audited=True)
                log.info(
                    "batch %s passed %s: %d expectations, %d rows (%s); published as snapshot %s",
                    batch.batch_id,
                    self.suite,
                    outcome.evaluated,
                    outcome.rows,
                    engine,
                    last_snapshot,
                )
            else:
                for failure in outcome.blocking:
                    log.error(
                        "FAILED %s on column %s: observed %s",
                        failure["expectation"],
                        failure["column"],
                        failure["observed"],
                    )
                verdict = batches.Verdict(self.suite, outcome.blocking[:50], outcome.docs_path, context["run_id"])
                batches.quarantine(tables, raw, batch, verdict)
                failed.append(batch.batch_id)
            results[batch.batch_id] = {**summary, "snapshot_id": last_snapshot if outcome.passed else None,
                                       "staged_snapshot": batch.snapshot_id}  # fmt: skip
        self._push_docs_link(context, results)
        context["ti"].xcom_push(key=QUALITY_XCOM_KEY, value=results)
        if failed:
            raise AirflowFailException(
                f"quality gate '{self.suite}' failed for batch(es) {', '.join(failed)}: their rows are in "
                f"{tables.ident('raw_quarantine')}, readers of {tables.ident('raw')} never see them; downstream "
                f"tasks will not run. Fix the data or release with `mlops-ops quality release --pipeline "
                f"{self.pipeline} --batch {failed[0]} --by NAME --reason WHY`"
            )
        if not any(batches.changes_rows(b) for b in staged):  # a task that succeeds emits its outlets
            raise AirflowSkipException("; ".join(batches.unchanged_message(b) for b in staged))
        out = {"table": tables.ident("raw"), "snapshot_id": last_snapshot, "batches": sorted(results), "passed": True}
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {**out, "suite": self.suite}
        return out

    def _record(self, tables: Any, context: Context, batch: Any, summary: dict[str, Any]) -> None:
        """The batch's verdict in ``<pipeline>.quality_checks`` (read by the approval evidence and lineage)."""
        from datetime import UTC, datetime

        from mlops_ops.lake.history import append_row, row_key
        from mlops_ops.lake.tables import QUALITY_CHECK_COLUMNS

        row = {"checked_at": datetime.now(UTC), "run_id": str(context["run_id"]), "batch_id": batch.batch_id,
               "source": batch.source, "suite": self.suite, "engine": summary["engine"],
               "passed": bool(summary["passed"]), "rows": int(summary["rows"] or 0),
               "evaluated": int(summary["evaluated"] or 0), "failed": int(summary["blocking_count"]),
               "warnings": int(summary["warning_count"]), "docs_path": summary.get("docs_path") or ""}  # fmt: skip
        append_row(tables.quality_checks(), row_key("gate-", batch.batch_id), row, QUALITY_CHECK_COLUMNS,
                   {"mlops.run-id": str(context["run_id"])})  # fmt: skip

    def _push_docs_link(self, context: Context, results: dict[str, Any]) -> None:
        pages = [r.get("docs_path") for r in results.values() if r.get("docs_path")]
        if pages:
            context["ti"].xcom_push(key=DOCS_XCOM_KEY, value=f"{DOCS_ROUTE}/{self.pipeline}/{pages[-1]}")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: each audited batch with GX's assertions and its Data Docs -> ``raw``'s published head."""
        from mlops_ops.lineage import openlineage as ol
        from mlops_ops.operators import openlineage as emit

        result = emit.task_result(task_instance)
        batches = task_instance.xcom_pull(task_ids=task_instance.task_id, key=QUALITY_XCOM_KEY) or {}
        if not result or not batches:
            return None
        lineage = ol.quality_gate(result, batches, catalog=emit.catalog(self.iceberg_conn_id), suite=self.suite,
                                  docs_url=f"{DOCS_ROUTE}/{self.pipeline}")  # fmt: skip
        return emit.as_operator_lineage(lineage)
