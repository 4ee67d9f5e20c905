"""``DriftCheckOperator`` and ``DriftSignalOperator``: the scheduled drift check and the retraining trigger.

The check and the signal are two tasks because an Airflow task with outlets emits an
Asset event whenever it succeeds: the signal task carries the drift Asset and skips
(so emits nothing) when there is no drift or the cool-down is running.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, BaseOperatorLink

from mlops_ops.naming import DRIFT_CHECK_TASK, REPORTS_ROUTE, safe_link
from mlops_ops.operators.base import LakeOperator, run_type
from mlops_ops.ui.links import MlflowRunLink, task_result

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey

log = logging.getLogger(__name__)
MONITORING_DATASET = "monitoring"


class DriftReportLink(BaseOperatorLink):
    """The Evidently report of the check, served by the plugin from the lake."""

    name = "Drift report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return safe_link(task_result(ti_key).get("report_url"))


class DriftCheckOperator(LakeOperator):
    """Compare the data that arrived since the last check with the champion's training data.

    Featurizes the window with the pipeline's preprocess transform (Spark), scores both
    sides with the champion for prediction drift, runs Evidently, and saves the HTML and
    JSON report to ``<lake>/<pipeline>/monitoring/reports/`` and to an MLflow run in the
    experiment ``<model>-monitoring``, and appends a row to ``<pipeline>.drift_checks``. Skips with
    the reason when there is no champion, no lineage to find its data, or no new data. Returns a
    summary (no data) for the signal.
    """

    template_fields: Sequence[str] = ("window", "lake", "pipeline")
    operator_extra_links = (DriftReportLink(), MlflowRunLink())

    def __init__(
        self,
        *,
        model_name: str,
        key_column: str,
        target: str | None = None,
        transform: str | None = None,
        sql: str | None = None,
        transform_params: Mapping[str, Any] | None = None,
        window: str = "since_last_check",
        drift_share: float = 0.3,
        column_threshold: float | None = None,
        max_rows: int = 200_000,
        spark_conn_id: str = "spark_default",
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.key_column = key_column
        self.target = target
        self.transform = transform
        self.sql = sql
        self.transform_params = dict(transform_params or {})
        self.window = window
        self.drift_share = drift_share
        self.column_threshold = column_threshold
        self.max_rows = max_rows
        self.spark_conn_id = spark_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import os

        from mlops_ops._compat import airflow_exception

        AirflowSkipException = airflow_exception("AirflowSkipException")

        from mlops_ops import metrics
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.lake.store import Dataset
        from mlops_ops.monitoring.drift import PREDICTION, compute_drift
        from mlops_ops.monitoring.window import (
            NothingToCheck,
            champion_lineage,
            checked_snapshots,
            last_checked,
            window_files,
        )
        from mlops_ops.training.data import open_features, read_split

        hook = MlflowHook(self.mlflow_conn_id)
        os.environ.update(hook.client_env())  # mlflow.*.load_model reads the tracking URI from the environment
        client = hook.get_conn()
        tables = self.tables()
        raw = tables.load("raw")
        monitoring = Dataset.at(self.lake, self.pipeline, MONITORING_DATASET, conn_id=self.aws_conn_id)
        try:
            if raw is None:
                raise NothingToCheck(f"{tables.ident('raw')} does not exist yet")
            champion = champion_lineage(client, self.model_name)
            reference_snapshot = open_features(champion.features, tables.catalog)
            checks = tables.load("drift_checks")
            # a backfill run checks its own past window; its since_last_check starts where the newest check
            # before it ended (backfills included); other runs start where the last non-backfill check ended
            checked = checked_snapshots(checks) if _is_backfill(context) else last_checked(checks)
            files, raw_head = window_files(raw, champion, checked, self.window, at=_window_end(context))
            if not files:
                raise NothingToCheck(f"no new published data in {tables.ident('raw')} for window '{self.window}'")
            current = self._featurize(raw.io, files)
            if current.empty:
                raise NothingToCheck(f"the transform kept no rows of the {len(files)} new file(s)")
        except NothingToCheck as reason:
            log.info("drift check skipped: %s", reason)
            raise AirflowSkipException(str(reason)) from reason
        reference = read_split(reference_snapshot, "train")
        reference, current = _sample(reference, self.max_rows), _sample(current, self.max_rows)
        columns = self._score(champion.version, reference, current)
        result, snapshot = compute_drift(
            reference, current, columns=columns, prediction_column=PREDICTION if PREDICTION in current else None,
            target_column=self.target, drift_share=self.drift_share, column_threshold=self.column_threshold,
        )  # fmt: skip
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + re.sub(r"[^A-Za-z0-9_.-]", "_", context["run_id"])
        html = snapshot.get_html_str(as_iframe=False)  # rendered once: the lake's copy and MLflow's are the same page
        monitoring.write_bytes(html.encode(), "reports", stamp, "drift.html")
        report_uri = monitoring.uri("reports", stamp, "drift.html")
        summary = {**result.summary(), "champion_version": champion.version, "window": self.window,
                   "report_uri": report_uri, "report_url": f"{REPORTS_ROUTE}/{self.pipeline}/{stamp}/drift.html",
                   "window_files": len(files), "current_rows": len(current), "reference": champion.features,
                   "raw_snapshot": raw_head}  # fmt: skip
        monitoring.write_json({**summary, "evidently": snapshot.dict()}, "reports", stamp, "drift.json")
        summary["mlflow_run_id"] = self._log_to_mlflow(client, summary, html)
        self._record(tables, context, summary, result)
        metrics.gauge(self.pipeline, "drift", "share", result.drift_share)
        metrics.gauge(self.pipeline, "drift", "drifted_columns", len(result.drifted_columns))
        metrics.incr(self.pipeline, "drift", "detected" if result.drifted else "not_detected")
        (log.warning if result.drifted else log.info)(
            "%s drift: share %.2f (threshold %.2f), drifted %s, missing %s, new %s, prediction %s; report %s",
            "DETECTED" if result.drifted else "no", result.drift_share, self.drift_share,
            result.drifted_columns or "none", result.missing_columns, result.new_columns,
            result.prediction_drift, report_uri,
        )  # fmt: skip
        return summary

    def _featurize(self, io: Any, files: list[str]) -> Any:
        from mlops_ops.hooks.spark import SparkHook
        from mlops_ops.lake.features import FeatureBuild, transform_frame

        hook = SparkHook(self.spark_conn_id, app_name=f"mlops-ops-{self.pipeline}-drift")
        build = FeatureBuild(self.key_column, self.transform, self.sql, self.transform_params)
        return transform_frame(hook.get_conn(), io, files, build, local_session=hook.session_options().stages_locally,
                               max_rows=self.max_rows * 2)  # fmt: skip

    def _record(self, tables: Any, context: Context, summary: dict[str, Any], result: Any) -> None:
        """One row in ``drift_checks`` per check (a retry of the same task run adds none)."""
        import json

        from mlops_ops.lake.history import append_row, row_key
        from mlops_ops.lake.tables import DRIFT_CHECK_COLUMNS

        row = {"checked_at": datetime.now(UTC), "run_id": str(context["run_id"]),
               "champion_version": summary["champion_version"], "raw_snapshot": int(summary["raw_snapshot"]),
               "window": self.window, "rows": int(summary.get("current_rows", 0)), "drifted": bool(result.drifted),
               "drift_share": float(result.drift_share), "drifted_columns": json.dumps(summary["drifted_columns"]),
               "report_uri": summary["report_uri"], "backfill": _is_backfill(context)}  # fmt: skip
        append_row(tables.drift_checks(), row_key("check-", str(context["run_id"])), row, DRIFT_CHECK_COLUMNS,
                   {"mlops.run-id": str(context["run_id"])})  # fmt: skip

    def _score(self, version: str, reference: Any, current: Any) -> list[str]:
        """Add the champion's predictions to both frames; return the model's input columns (the ones compared)."""
        from mlops_ops.monitoring.drift import PREDICTION
        from mlops_ops.training.evaluation import ModelScorer

        champion = ModelScorer(f"models:/{self.model_name}/{version}")
        columns = champion.columns or [c for c in reference.columns if c not in (self.key_column, self.target)]
        if all(c in current.columns for c in columns):
            # the prediction signal: the value (regression), P(positive) (binary) or the predicted label (multiclass)
            for frame in (reference, current):
                frame[PREDICTION] = champion.signal(frame)
        else:
            log.warning("current data lacks model input(s) %s: no prediction drift",
                        [c for c in columns if c not in current.columns])  # fmt: skip
        return columns

    def _log_to_mlflow(self, client: Any, summary: dict[str, Any], html: str) -> str:
        name = f"{self.model_name}-monitoring"
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            from mlflow.exceptions import MlflowException

            try:
                experiment_id = client.create_experiment(name)
            except MlflowException:  # created meanwhile by another check
                experiment_id = client.get_experiment_by_name(name).experiment_id
        tags = {
            "mlops_ops.pipeline": self.pipeline,
            "mlops_ops.champion_version": summary["champion_version"],
            "mlops_ops.report_uri": summary["report_uri"],
            "mlops_ops.drifted": str(summary["drifted"]).lower(),
        }
        run = client.create_run(experiment_id, run_name=f"drift-{self.pipeline}", tags=tags)
        run_id = str(run.info.run_id)
        client.log_metric(run_id, "drift_share", summary["drift_share"])
        client.log_metric(run_id, "drifted_columns", len(summary["drifted_columns"]))
        for column, score in summary["drifted_columns"].items():
            client.log_metric(run_id, "drift_score." + re.sub(r"[^A-Za-z0-9_.-]", "_", column), score)
        client.log_text(run_id, html, "drift/report.html")
        client.log_dict(run_id, summary, "drift/summary.json")
        client.set_terminated(run_id)
        return run_id

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the champion's features (reference) and ``raw`` up to the snapshot the window ended at."""
        from mlops_ops.lineage import openlineage as ol
        from mlops_ops.operators import openlineage as emit

        result = emit.task_result(task_instance)
        if not result:
            return None
        lineage = ol.drift_check(result, catalog=emit.catalog(self.iceberg_conn_id), pipeline=self.pipeline)
        return emit.as_operator_lineage(lineage)


class DriftSignalOperator(BaseOperator):
    """Emit the drift Asset event (its outlet) when the check found drift and the cool-down has passed.

    The event's ``extra`` carries the drifted columns, scores, share and report URI; the
    pipeline's training DAG is scheduled on this Asset. The cool-down is measured from the
    Asset's last event, read through the task's inlet (Airflow keeps the events).
    """

    def __init__(self, *, check_task_id: str = DRIFT_CHECK_TASK, cooldown: str = "6h", backfill_retrains: bool = False,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.check_task_id = check_task_id
        self.cooldown = cooldown
        self.backfill_retrains = backfill_retrains

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops._compat import airflow_exception

        AirflowSkipException = airflow_exception("AirflowSkipException")

        summary = context["ti"].xcom_pull(task_ids=self.check_task_id)
        if not summary:
            raise AirflowSkipException("the drift check did not run: nothing to signal")
        if not summary["drifted"]:
            raise AirflowSkipException(f"no drift (share {summary['drift_share']:.2f}): no retraining")
        if _is_backfill(context) and not self.backfill_retrains:
            raise AirflowSkipException(
                f"drift found (share {summary['drift_share']:.2f}) in a backfill run: recorded in drift_checks, no "
                "retraining signal (set drift.backfill_retrains: true to let backfills retrain)"
            )
        from mlops_ops.durations import parse_duration

        wait = parse_duration(self.cooldown)
        for asset in self.outlets:
            events = context["inlet_events"][asset].ascending(False).limit(1)
            last = events[0].timestamp if len(events) else None
            if last is not None and datetime.now(UTC) - last < wait:
                raise AirflowSkipException(
                    f"drift found but the cool-down ({self.cooldown}) runs until {last + wait:%Y-%m-%d %H:%M} UTC: "
                    f"last retraining signal at {last:%Y-%m-%d %H:%M} UTC"
                )
        extra = {key: summary[key] for key in ("drift_share", "drifted_columns", "missing_columns", "new_columns",
                                               "prediction_drift", "report_uri", "report_url", "champion_version",
                                               "mlflow_run_id")}  # fmt: skip
        for asset in self.outlets:
            context["outlet_events"][asset].extra = extra
        log.warning("retraining requested: drifted columns %s, report %s", summary["drifted_columns"],
                    summary["report_uri"])  # fmt: skip
        return extra


def _is_backfill(context: Context) -> bool:
    return run_type(context) == "backfill"


def _window_end(context: Context) -> datetime | None:
    """Where the run's window ends. A backfill or manual run: its data interval's end (or logical date), so a run for
    a past day checks that day. Scheduled and asset-triggered runs: ``None`` (now): a run that starts late (the first
    one after unpausing, a scheduler that was down) still checks everything that arrived."""
    if run_type(context) not in ("backfill", "manual"):
        return None
    run = context.get("dag_run")
    end = getattr(run, "data_interval_end", None) or getattr(run, "logical_date", None)
    return end if isinstance(end, datetime) else None


def _sample(frame: Any, max_rows: int) -> Any:
    """At most ``max_rows`` rows, the same ones every time for the same data."""
    return frame.sample(n=max_rows, random_state=0).reset_index(drop=True) if len(frame) > max_rows else frame
