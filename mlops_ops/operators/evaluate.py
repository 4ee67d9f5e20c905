"""``EvaluateModelOperator`` and ``PromoteModelOperator``: champion/challenger, then the alias switch."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator

from mlops_ops.ui.links import ModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


def _pipeline(context: Context) -> str:
    """The pipeline of a factory-built DAG (its DAG id otherwise): the name under which metrics are reported."""
    from mlops_ops.naming import pipeline_of_dag_id

    dag_id = context["dag"].dag_id
    return pipeline_of_dag_id(dag_id) or dag_id


class EvaluateModelOperator(BaseOperator):
    """Score the challenger and the current champion on the same held-out split and record a verdict.

    The verdict (blessed or not, with reasons) is written to the challenger's model
    version tags, which :class:`PromoteModelOperator` reads; the full report goes to its
    MLflow run as ``evaluation/report.json`` and ``evaluation/report.html``.
    """

    template_fields: Sequence[str] = ("model_name", "features", "version")
    operator_extra_links = (ModelVersionLink(),)

    def __init__(
        self,
        *,
        model_name: str,
        target: str,
        task: Literal["classification", "regression"],
        metrics: Sequence[str],
        thresholds: Mapping[str, Mapping[str, float | None]] | None = None,
        max_regression: Mapping[str, float] | None = None,
        slice_column: str | None = None,
        split: str = "test",
        version: str | None = None,
        features: str | None = None,
        train_task_id: str = "train",
        mlflow_conn_id: str = "mlflow_default",
        iceberg_conn_id: str = "iceberg_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.target = target
        self.task = task
        self.metrics = list(metrics)
        self.thresholds = {k: dict(v) for k, v in (thresholds or {}).items()}
        self.max_regression = dict(max_regression or {})
        self.slice_column = slice_column
        self.split = split
        self.version = version
        self.features = features
        self.train_task_id = train_task_id
        self.mlflow_conn_id = mlflow_conn_id
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import os

        import numpy as np

        from mlops_ops import metrics
        from mlops_ops.hooks.iceberg import IcebergCatalogHook
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.training.data import load_split, open_features
        from mlops_ops.training.evaluation import CHAMPION, compute_metrics, judge, report_html, scorer
        from mlops_ops.training.registry import alias_version

        trained = context["ti"].xcom_pull(task_ids=self.train_task_id) or {}
        version = self.version or trained.get("version")
        features_ref = self.features or trained.get("features")
        if not version or not features_ref:
            raise ValueError(f"nothing to evaluate: pass version and features or run after '{self.train_task_id}'")
        hook = MlflowHook(self.mlflow_conn_id)
        os.environ.update(hook.client_env())  # mlflow.*.load_model reads the tracking URI from the environment
        client = hook.get_conn()
        challenger_version = client.get_model_version(self.model_name, version)
        champion = alias_version(client, self.model_name, CHAMPION)
        features = open_features(features_ref, IcebergCatalogHook(self.iceberg_conn_id).get_conn())
        data = load_split(features, self.split, self.target)
        score, _ = scorer(f"models:/{self.model_name}/{version}")
        scores = score(data.features)
        challenger_metrics = compute_metrics(self.task, data.target, scores, self.metrics)
        report: dict[str, Any] = {"model_name": self.model_name, "split": self.split, "rows": len(data.target),
                                  "metrics": self.metrics, "features": features_ref,
                                  "challenger": {"version": version, "metrics": challenger_metrics}}  # fmt: skip
        champion_metrics = None
        if champion is not None and champion != version:
            champion_score, _ = scorer(f"models:/{self.model_name}/{champion}")
            champion_metrics = compute_metrics(self.task, data.target, champion_score(data.features), self.metrics)
            report["champion"] = {"version": champion, "metrics": champion_metrics}
        if self.slice_column:
            if self.slice_column not in data.frame.columns:
                raise ValueError(f"slice_column '{self.slice_column}' is not a column of the feature table")
            values = data.frame[self.slice_column].to_numpy()
            report["slice_column"] = self.slice_column
            report["slices"] = {
                str(v): {"rows": int((values == v).sum()),
                         **compute_metrics(self.task, data.target[values == v], np.asarray(scores)[values == v],
                                           [m for m in self.metrics if m != "roc_auc"] or self.metrics)}
                for v in sorted(set(values.tolist()), key=str)[:50]
            }  # fmt: skip
        verdict = judge(report["challenger"]["metrics"], champion_metrics, self.thresholds, self.max_regression)
        report["verdict"] = {"blessed": verdict.blessed, "reasons": verdict.reasons}
        run_id = challenger_version.run_id
        client.log_dict(run_id, report, "evaluation/report.json")
        client.log_text(run_id, report_html(report), "evaluation/report.html")
        for name, value in report["challenger"]["metrics"].items():
            client.log_metric(run_id, f"{self.split}_{name}", value)
        client.set_model_version_tag(self.model_name, version, "mlops_ops.blessed", str(verdict.blessed).lower())
        client.set_model_version_tag(self.model_name, version, "mlops_ops.verdict",
                                     "; ".join(verdict.reasons) or "all checks passed")  # fmt: skip
        (log.info if verdict.blessed else log.warning)(
            "%s v%s %s: %s (champion %s)", self.model_name, version,
            "blessed" if verdict.blessed else "NOT blessed", report["challenger"]["metrics"], champion_metrics
        )  # fmt: skip
        for reason in verdict.reasons:
            log.warning("not blessed: %s", reason)
        pipeline = _pipeline(context)
        for name, value in report["challenger"]["metrics"].items():
            metrics.gauge(pipeline, "evaluate", f"challenger.{name}", value)
        metrics.incr(pipeline, "evaluate", "blessed" if verdict.blessed else "not_blessed")
        # key_metric: the spec's first metric (a JSONB XCom backend does not keep the metrics' order)
        return {"version": version, "champion_version": champion, "blessed": verdict.blessed,
                "reasons": verdict.reasons, "metrics": report["challenger"]["metrics"],
                "key_metric": self.metrics[0]}  # fmt: skip


class PromoteModelOperator(BaseOperator):
    """Move alias ``champion`` to the evaluated version when (and only when) it is blessed.

    The previous champion keeps alias ``previous``. Idempotent under retries; serialised
    against other promotions of the same model. A version that is not blessed skips the
    task with the evaluation's reasons. A change of champion emits an event on the
    operator's outlets (the model's Asset).
    """

    template_fields: Sequence[str] = ("model_name", "version")
    operator_extra_links = (ModelVersionLink(),)

    def __init__(self, *, model_name: str, version: str | None = None, evaluate_task_id: str = "evaluate",
                 mlflow_conn_id: str = "mlflow_default", **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.evaluate_task_id = evaluate_task_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from mlops_ops import metrics
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.training.registry import NotBlessedError, promote

        evaluated = context["ti"].xcom_pull(task_ids=self.evaluate_task_id) or {}
        version = self.version or evaluated.get("version")
        if not version:
            raise ValueError(f"no version to promote: pass version or run after '{self.evaluate_task_id}'")
        by = f"{context['dag'].dag_id}/{context['run_id']}/{self.task_id}"
        try:
            result = promote(MlflowHook(self.mlflow_conn_id).get_conn(), self.model_name, str(version), by=by)
        except NotBlessedError as err:
            raise AirflowSkipException(f"{err}; the champion stays") from err
        log.info("%s: champion is version %s (previous %s)%s", self.model_name, result["champion"],
                 result["previous"], "" if result["changed"] else ", unchanged")  # fmt: skip
        if result["changed"]:
            metrics.incr(_pipeline(context), "promote", "champion_changes")
            metrics.gauge(_pipeline(context), "promote", "champion_version", float(result["champion"]))
            for outlet in self.outlets:
                context["outlet_events"][outlet].extra = dict(result)
        return result
