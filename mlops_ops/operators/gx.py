"""``QualityGateOperator``: validate the batches ingested by this run; quarantine what fails."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator, BaseOperatorLink

from mlops_ops.operators.kafka import LAKE_TEMPLATE

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)
DOCS_XCOM_KEY = "data_docs_url"
DOCS_ROUTE = "/mlops-ops/data-docs"


class DataDocsLink(BaseOperatorLink):
    """The Data Docs page of the task's validation, served by the plugin from the lake."""

    name = "Data Docs"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=DOCS_XCOM_KEY)
        return str(url) if url else ""


class QualityGateOperator(BaseOperator):
    """Validate each batch ingested in this run against GX checkpoint ``<suite>.<engine>``.

    Batches come from ``manifest_uris`` or from the return values of ``ingest_task_ids``.
    A batch with failed *critical* expectations is quarantined in the lake (its files
    stay, readers leave it out), the failures are logged and pushed to XCom, and the
    task fails without retries so nothing downstream (training, promotion) runs. A batch
    released with ``mlops-ops quality release`` passes on the next try without being
    validated again; the release is logged with who and why.
    """

    template_fields: Sequence[str] = ("pipeline", "lake", "suite", "manifest_uris", "dataset")
    operator_extra_links = (DataDocsLink(),)
    ui_color = "#e6f4ea"

    def __init__(
        self,
        *,
        pipeline: str,
        suite: str,
        manifest_uris: list[str] | None = None,
        ingest_task_ids: Sequence[str] = (),
        engine: Literal["auto", "spark", "pandas"] = "auto",
        dataset: str = "raw",
        lake: str = LAKE_TEMPLATE,
        context_root: str | None = None,
        spark_conn_id: str = "spark_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.suite = suite
        self.manifest_uris = manifest_uris
        self.ingest_task_ids = list(ingest_task_ids)
        self.engine = engine
        self.dataset = dataset
        self.lake = lake
        self.context_root = context_root
        self.spark_conn_id = spark_conn_id
        self.aws_conn_id = aws_conn_id

    def _manifests(self, context: Context) -> list[str]:
        if self.manifest_uris is not None:
            return list(self.manifest_uris)
        uris = []
        for task_id in self.ingest_task_ids:
            value = context["ti"].xcom_pull(task_ids=task_id)
            if isinstance(value, dict) and value.get("manifest_uri"):
                uris.append(str(value["manifest_uri"]))
        return uris

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

        from mlops_ops import metrics
        from mlops_ops.hooks.gx import GreatExpectationsHook
        from mlops_ops.lake import quarantine
        from mlops_ops.lake.catalog import manifest_files
        from mlops_ops.lake.quality import DOCS_FOLDER, choose_engine, publish_data_docs, validate_files
        from mlops_ops.lake.store import Dataset

        manifests = self._manifests(context)
        if not manifests:
            raise AirflowSkipException("no batch was ingested in this run: nothing to validate")
        raw = Dataset.at(self.lake, self.pipeline, self.dataset, conn_id=self.aws_conn_id)
        docs = Dataset.at(self.lake, self.pipeline, DOCS_FOLDER, conn_id=self.aws_conn_id)
        hook = GreatExpectationsHook(self.context_root)
        gx_context = None
        results: dict[str, Any] = {}
        failed: list[str] = []
        for uri in manifests:
            record = quarantine.status(raw, uri)
            if record is not None and record.get("state") == "released":
                log.warning(
                    "batch %s was released from quarantine by %s (%s): admitted without validation",
                    quarantine.batch_id(uri),
                    record.get("released_by"),
                    record.get("release_reason"),
                )
                results[uri] = {"passed": True, "released": True}
                continue
            files = manifest_files(uri, self.aws_conn_id)
            rows = sum(int(f["rows"]) for f in files)
            engine = choose_engine(self.engine, rows)
            spark, local = None, True
            if engine == "spark":
                from mlops_ops.hooks.spark import SparkHook

                spark_hook = SparkHook(self.spark_conn_id, app_name=f"mlops-ops-{self.pipeline}")
                spark, local = spark_hook.get_conn(), spark_hook.session_options().is_local
            gx_context = gx_context or hook.get_conn()
            outcome, result_id = validate_files(hook, gx_context, self.suite, files, engine=engine, spark=spark,
                                                local_session=local, conn_id=self.aws_conn_id)  # fmt: skip
            try:
                outcome.docs_path = publish_data_docs(gx_context, result_id, docs)
            except Exception as err:  # noqa: BLE001 - docs are a convenience; the verdict stands without them
                log.warning("Data Docs could not be published: %s", err)
            summary = outcome.summary()
            results[uri] = summary
            metrics.incr(self.pipeline, "quality_gate", "passed" if outcome.passed else "failed")
            metrics.gauge(self.pipeline, "quality_gate", "failed_expectations", len(outcome.blocking))
            for warning in outcome.warnings:
                log.warning("quality warning (%s): %s on %s, observed %s", self.suite, warning["expectation"],
                            warning["column"], warning["observed"])  # fmt: skip
            if outcome.passed:
                log.info("batch %s passed %s: %d expectations, %d rows (%s)", quarantine.batch_id(uri), self.suite,
                         outcome.evaluated, outcome.rows, engine)  # fmt: skip
                continue
            for failure in outcome.blocking:
                log.error("FAILED %s on column %s: observed %s", failure["expectation"], failure["column"],
                          failure["observed"])  # fmt: skip
            quarantine.quarantine(raw, uri, suite=self.suite, failures=outcome.blocking[:50],
                                  result_uri=outcome.docs_path, run_id=context["run_id"])  # fmt: skip
            failed.append(quarantine.batch_id(uri))
        self._push_docs_link(context, results)
        context["ti"].xcom_push(key="quality", value=results)
        if failed:
            raise AirflowFailException(
                f"quality gate '{self.suite}' failed for batch(es) {', '.join(failed)}: quarantined in "
                f"{raw.root}/_quarantine; downstream tasks will not run. Fix the data or release with "
                f"`mlops-ops quality release --lake {self.lake} --pipeline {self.pipeline} --batch {failed[0]} "
                "--by NAME --reason WHY`"
            )
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = {"manifest_uris": list[Any](manifests), "suite": self.suite}
        return {"manifest_uris": manifests, "passed": True}

    def _push_docs_link(self, context: Context, results: dict[str, Any]) -> None:
        pages = [r.get("docs_path") for r in results.values() if r.get("docs_path")]
        if pages:
            context["ti"].xcom_push(key=DOCS_XCOM_KEY, value=f"{DOCS_ROUTE}/{self.pipeline}/{pages[-1]}")
