"""``EvaluateModelOperator`` and ``PromoteModelOperator``: champion/challenger, then the alias switch."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_ops.training.tasks import Task
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
    """Score the challenger, the current champion and a trivial baseline on the same held-out split; record a
    verdict.

    The verdict (blessed or not, with reasons) is written to the challenger's model version tags, which
    :class:`PromoteModelOperator` reads; the report goes to its MLflow run as ``evaluation/report.json``,
    ``evaluation/report.html`` and pictures (confusion matrix or residuals, slices).
    """

    template_fields: Sequence[str] = ("model_name", "features", "version")
    operator_extra_links = (ModelVersionLink(),)

    def __init__(
        self,
        *,
        model_name: str,
        target: str,
        task: Task,
        metrics: Sequence[str],
        thresholds: Mapping[str, Mapping[str, float | None]] | None = None,
        max_regression: Mapping[str, float] | None = None,
        custom_metrics: Mapping[str, Mapping[str, Any]] | None = None,
        slice_column: str | None = None,
        beat_baseline: bool = True,
        split: str = "test",
        version: str | None = None,
        features: str | None = None,
        train_task_id: str = "train",
        mlflow_conn_id: str = "mlflow_default",
        iceberg_conn_id: str = "iceberg_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from mlops_ops.training.tasks import metric_problem

        self.custom_metrics = {k: dict(v) for k, v in (custom_metrics or {}).items()}
        problems = [metric_problem(task, m, frozenset(self.custom_metrics)) for m in metrics]
        problems += [f"'{m}' has a threshold or max_regression but is not in metrics"
                     for m in {*(thresholds or {}), *(max_regression or {})} if m not in metrics]  # fmt: skip
        if any(problems):
            raise ValueError(f"{self.task_id}: " + "; ".join(p for p in problems if p))
        self.model_name = model_name
        self.target = target
        self.task = task
        self.metrics = list(metrics)
        self.thresholds = {k: dict(v) for k, v in (thresholds or {}).items()}
        self.max_regression = dict(max_regression or {})
        self.slice_column = slice_column
        self.beat_baseline = beat_baseline
        self.split = split
        self.version = version
        self.features = features
        self.train_task_id = train_task_id
        self.mlflow_conn_id = mlflow_conn_id
        self.iceberg_conn_id = iceberg_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import os

        from mlops_ops import metrics
        from mlops_ops.hooks.iceberg import IcebergCatalogHook
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.training.data import load_split, open_features
        from mlops_ops.training.evaluation import CHAMPION, ModelScorer, judge
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
        frame = load_split(features, self.split, self.target)
        challenger = ModelScorer(f"models:/{self.model_name}/{version}")
        if not challenger.ours or challenger.meta["task"] != self.task:  # type: ignore[index]
            task = challenger.meta["task"] if challenger.meta else "unknown"
            raise ValueError(f"{self.model_name} v{version} was trained for task '{task}', evaluated as "
                             f"'{self.task}': train and evaluate must name the same task")  # fmt: skip
        scored = self._score(challenger, frame)
        report: dict[str, Any] = {"model_name": self.model_name, "task": self.task, "split": self.split,
                                  "rows": len(frame), "metrics": self.metrics, "features": features_ref,
                                  "challenger": {"version": version, "metrics": scored["metrics"]},
                                  "thresholds": self.thresholds, "max_regression": self.max_regression}  # fmt: skip
        if self.beat_baseline:
            report["baseline"] = {"metrics": self._baseline(features, challenger, scored)}
        champion_metrics = None
        if champion is not None and champion != version:
            incumbent = ModelScorer(f"models:/{self.model_name}/{champion}")
            if incumbent.ours:
                champion_metrics = self._score(incumbent, frame)["metrics"]
                report["champion"] = {"version": champion, "metrics": champion_metrics}
            else:
                report["champion_skipped"] = (f"champion v{champion} was saved by an earlier mlops-ops model "
                                              "format and cannot be scored the same way; compared on thresholds "
                                              "only")  # fmt: skip
                log.warning("%s", report["champion_skipped"])
        pictures = self._pictures(challenger, frame, scored, report)
        directions = {k: bool(v.get("higher_is_better", True)) for k, v in self.custom_metrics.items()}
        verdict = judge(report["challenger"]["metrics"], champion_metrics, self.thresholds, self.max_regression,
                        baseline=(report.get("baseline") or {}).get("metrics"), key_metric=self.metrics[0],
                        directions=directions)  # fmt: skip
        if champion is not None and champion != version:  # the same request on the same snapshot (N19)
            from mlops_ops.training.evaluation import Verdict
            from mlops_ops.training.replay import twin_reason

            twin = twin_reason(client, self.model_name, str(version), str(champion))
            if twin:
                verdict = Verdict(blessed=False, reasons=[*verdict.reasons, twin])
        report["verdict"] = {"blessed": verdict.blessed, "reasons": verdict.reasons}
        self._log_report(client, challenger_version.run_id, report, pictures)
        client.set_model_version_tag(self.model_name, version, "mlops_ops.blessed", str(verdict.blessed).lower())
        client.set_model_version_tag(self.model_name, version, "mlops_ops.verdict",
                                     "; ".join(verdict.reasons) or "all checks passed")  # fmt: skip
        (log.info if verdict.blessed else log.warning)(
            "%s v%s %s: %s (champion %s, baseline %s)", self.model_name, version,
            "blessed" if verdict.blessed else "NOT blessed", report["challenger"]["metrics"], champion_metrics,
            (report.get("baseline") or {}).get("metrics"),
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

    def _custom(self) -> dict[str, Any]:
        from mlops_ops.training.evaluation import CustomMetric

        return {name: CustomMetric(**spec) for name, spec in self.custom_metrics.items()}

    def _labels(self, scorer: Any) -> Any:
        from mlops_ops.training.data import Labels

        meta = scorer.meta
        return Labels(meta["task"], meta.get("classes"), meta.get("positive_class"))

    def _score(self, scorer: Any, frame: Any) -> dict[str, Any]:
        """Metrics of one model: the target encoded with *its* classes (a champion may know other classes)."""
        from mlops_ops.training.evaluation import compute_metrics

        labels = self._labels(scorer)
        y = labels.encode(frame[self.target])
        predictions = scorer.predictions(frame)
        return {"y": y, "predictions": predictions, "labels": labels,
                "metrics": compute_metrics(y, predictions, self.metrics, classes=labels.classes,
                                           custom=self._custom())}  # fmt: skip

    def _baseline(self, features: Any, scorer: Any, scored: dict[str, Any]) -> dict[str, float]:
        from mlops_ops.training.data import read_column
        from mlops_ops.training.evaluation import baseline_predictions, compute_metrics

        labels = scored["labels"]
        train_y = labels.encode(read_column(features, "train", self.target))
        trivial = baseline_predictions(self.task, train_y, len(scored["y"]), len(labels.classes or []),
                                       scored["predictions"].threshold)  # fmt: skip
        return compute_metrics(scored["y"], trivial, self.metrics, classes=labels.classes, custom=self._custom())

    def _pictures(self, scorer: Any, frame: Any, scored: dict[str, Any], report: dict[str, Any]) -> dict[str, bytes]:
        import numpy as np

        from mlops_ops.training.evaluation import (
            Predictions,
            compute_metrics,
            confusion_png,
            residuals_png,
            slices_png,
        )

        y, predictions, labels = scored["y"], scored["predictions"], scored["labels"]
        pictures: dict[str, bytes] = {}
        if self.task == "regression":
            pictures["residuals.png"] = residuals_png(y, predictions.scores)
        else:
            pictures["confusion_matrix.png"] = confusion_png(y, predictions.labels(), labels.classes)
        if self.slice_column:
            if self.slice_column not in frame.columns:
                raise ValueError(f"slice_column '{self.slice_column}' is not a column of the feature table")
            values = frame[self.slice_column].to_numpy()
            scores = np.asarray(predictions.scores)
            report["slice_column"] = self.slice_column
            report["slices"] = {
                str(v): {"rows": int((values == v).sum()),
                         **compute_metrics(y[values == v], Predictions(self.task, scores[values == v],
                                                                       predictions.threshold),
                                           self.metrics, classes=labels.classes, custom=self._custom())}
                for v in sorted(set(values.tolist()), key=str)[:50]
            }  # fmt: skip
            pictures["slices.png"] = slices_png(report["slices"], self.metrics[0])
        return pictures

    def _log_report(self, client: Any, run_id: str, report: dict[str, Any], pictures: dict[str, bytes]) -> None:
        import tempfile
        from pathlib import Path

        from mlops_ops.training.evaluation import report_html

        client.log_dict(run_id, report, "evaluation/report.json")
        client.log_text(run_id, report_html(report, pictures), "evaluation/report.html")
        with tempfile.TemporaryDirectory() as tmp:
            for name, png in pictures.items():
                (Path(tmp) / name).write_bytes(png)
            client.log_artifacts(run_id, tmp, "evaluation")
        for name, value in report["challenger"]["metrics"].items():
            client.log_metric(run_id, f"{self.split}_{name}", value)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the challenger version and the features snapshot it was scored on (the verdict is a tag)."""
        from mlops_ops.lineage import openlineage as ol
        from mlops_ops.operators import openlineage as emit

        result = emit.task_result(task_instance)
        if not result.get("version"):
            return None
        lineage = ol.model_decision(emit.tracking_uri(self.mlflow_conn_id), self.model_name, str(result["version"]),
                                    decision="blessed" if result.get("blessed") else "not_blessed")  # fmt: skip
        if result.get("features"):
            lineage.inputs.append(ol.iceberg_table(emit.catalog(self.iceberg_conn_id), str(result["features"])))
        return emit.as_operator_lineage(lineage)


class PromoteModelOperator(BaseOperator):
    """Move alias ``champion`` to the evaluated version when (and only when) it is blessed.

    The previous champion keeps alias ``previous``. Idempotent under retries; serialised
    against other promotions of the same model. With ``require_approval``, a version that a person did not
    approve (tag ``mlops_ops.approval``) fails the task: marking the approval task successful approves nothing.
    A version that is not blessed skips the
    task with the evaluation's reasons. A change of champion emits an event on the
    operator's outlets (the model's Asset).
    """

    template_fields: Sequence[str] = ("model_name", "version")
    operator_extra_links = (ModelVersionLink(),)

    def __init__(self, *, model_name: str, version: str | None = None, evaluate_task_id: str = "evaluate",
                 require_approval: bool = False, mlflow_conn_id: str = "mlflow_default",
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.model_name = model_name
        self.require_approval = require_approval
        self.version = version
        self.evaluate_task_id = evaluate_task_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_ops._compat import airflow_exception

        AirflowFailException = airflow_exception("AirflowFailException")
        AirflowSkipException = airflow_exception("AirflowSkipException")

        from mlops_ops import metrics
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.operators.base import replay_of
        from mlops_ops.training.approval import NotApprovedError
        from mlops_ops.training.registry import NotBlessedError, promote

        evaluated = context["ti"].xcom_pull(task_ids=self.evaluate_task_id) or {}
        version = self.version or evaluated.get("version")
        if not version:
            raise ValueError(f"no version to promote: pass version or run after '{self.evaluate_task_id}'")
        if replay_of(context):
            raise AirflowSkipException(f"v{version} replays {replay_of(context)}: a replay never moves an alias")
        by = f"{context['dag'].dag_id}/{context['run_id']}/{self.task_id}"
        try:
            result = promote(MlflowHook(self.mlflow_conn_id).get_conn(), self.model_name, str(version), by=by,
                             require_approval=self.require_approval)  # fmt: skip
        except NotBlessedError as err:
            raise AirflowSkipException(f"{err}; the champion stays") from err
        except NotApprovedError as err:
            raise AirflowFailException(f"{err}; the champion stays") from err
        log.info("%s: champion is version %s (previous %s)%s", self.model_name, result["champion"],
                 result["previous"], "" if result["changed"] else ", unchanged")  # fmt: skip
        if result["changed"]:
            metrics.incr(_pipeline(context), "promote", "champion_changes")
            metrics.gauge(_pipeline(context), "promote", "champion_version", float(result["champion"]))
            for outlet in self.outlets:
                context["outlet_events"][outlet].extra = dict(result)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the version that is now ``champion`` (an output: its alias changed)."""
        from mlops_ops.lineage import openlineage as ol
        from mlops_ops.operators import openlineage as emit

        result = emit.task_result(task_instance)
        if not result.get("champion"):
            return None
        lineage = ol.model_decision(emit.tracking_uri(self.mlflow_conn_id), self.model_name, str(result["champion"]),
                                    read=False, decision="champion")  # fmt: skip
        return emit.as_operator_lineage(lineage)
