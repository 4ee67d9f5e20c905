"""``ApproveModelOperator``: a person approves a blessed challenger in Airflow's Required Actions page.

Airflow's own human-in-the-loop ``ApprovalOperator`` (standard provider) does the waiting: the task parks in
``awaiting_input`` (Airflow 3.3+) until someone answers in the UI or through the REST API, or the response timeout
passes (the scheduler then applies the default, ``Reject``). This subclass writes the evidence into the request's
body, records the decision as tags on the model version, and skips the promotion on anything but ``Approve``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from mlops_ops.naming import EVALUATE_TASK
from mlops_ops.operators.base import replay_of, run_type
from mlops_ops.ui.links import ModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)
FORM_FIELDS = ("comment",)


class ApproveModelOperator(ApprovalOperator):
    """:param model_name: the registered model.
    :param pipeline: the pipeline (its lake tables hold the quality-gate verdicts shown as evidence).
    :param response_timeout: how long to wait for an answer; then the version is rejected (``timed_out``).
    :param approvers: Airflow user ids allowed to answer (empty: whoever may act on the DAG's Required Actions).
    """

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "model_name")
    operator_extra_links = (ModelVersionLink(),)
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        model_name: str,
        pipeline: str,
        response_timeout: timedelta | str | None = None,
        approvers: Sequence[str] = (),
        evaluate_task_id: str = EVALUATE_TASK,
        mlflow_conn_id: str = "mlflow_default",
        iceberg_conn_id: str = "iceberg_default",
        **kwargs: Any,
    ) -> None:
        from airflow.sdk import Param

        from mlops_ops.durations import parse_duration

        if isinstance(response_timeout, str):  # as specs (and DAG plans) write it: 30m, 6h, 3d
            response_timeout = parse_duration(response_timeout)
        super().__init__(
            subject=f"Promote {model_name}?",
            body=None,
            defaults=[self.REJECT],  # what the scheduler applies when the response timeout passes
            response_timeout=response_timeout,
            assigned_users=[{"id": user, "name": user} for user in approvers] or None,
            # the DAG's own Params arrive here too; HITL shows only task-sourced ones in its form
            params={
                **(kwargs.pop("params", None) or {}),
                "comment": Param(
                    None,
                    type=["null", "string"],
                    maxLength=1000,
                    title="Comment",
                    description="why (kept on the model version)",
                    source="task",
                ),
            },
            **kwargs,
        )
        self.model_name = model_name
        self.pipeline = pipeline
        self.approvers = list(approvers)
        self.evaluate_task_id = evaluate_task_id
        self.mlflow_conn_id = mlflow_conn_id
        self.iceberg_conn_id = iceberg_conn_id

    @property
    def serialized_params(self) -> dict[str, dict[str, Any]]:
        """Only the request's own form field (``comment``): the DAG's Params (``train_params``, ``reason``) reach the
        task too, and would otherwise show in the form and be demanded in every answer."""
        return {k: v for k, v in super().serialized_params.items() if k in FORM_FIELDS}

    def execute(self, context: Context) -> Any:
        from mlops_ops._compat import airflow_exception

        AirflowSkipException = airflow_exception("AirflowSkipException")

        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.training.approval import APPROVAL_TAG, PENDING

        evaluated = context["ti"].xcom_pull(task_ids=self.evaluate_task_id) or {}
        version = evaluated.get("version")
        if not version:
            raise ValueError(f"nothing to approve: '{self.evaluate_task_id}' returned no version")
        if not evaluated.get("blessed"):
            raise AirflowSkipException(f"{self.model_name} v{version} is not blessed: no approval is asked")
        if replay_of(context):
            raise AirflowSkipException(f"{self.model_name} v{version} replays {replay_of(context)}: never promoted")
        client = MlflowHook(self.mlflow_conn_id).get_conn()
        self.subject = f"Promote {self.model_name} v{version} to champion?"
        self.body = self._evidence(client, context, str(version))
        client.set_model_version_tag(self.model_name, str(version), APPROVAL_TAG, PENDING)
        log.info("waiting for a person to approve %s v%s (Required Actions page)", self.model_name, version)
        return super().execute(context)

    def _evidence(self, client: Any, context: Context, version: str) -> str:
        import json
        import tempfile
        from pathlib import Path

        from mlops_ops.hooks.iceberg import IcebergCatalogHook
        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.lake.history import gate_rows
        from mlops_ops.lake.tables import PipelineTables
        from mlops_ops.monitoring.window import RAW_SNAPSHOT_TAG
        from mlops_ops.naming import DOCS_ROUTE, drift_asset_name
        from mlops_ops.training.approval import evidence_markdown
        from mlops_ops.ui.links import model_version_url, run_url

        challenger = client.get_model_version(self.model_name, version)
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(challenger.run_id, "evaluation/report.json", tmp)
            report = json.loads(Path(path).read_text())
        since = None
        champion = (report.get("champion") or {}).get("version")
        if champion:
            raw = client.get_model_version(self.model_name, champion).tags.get(RAW_SNAPSHOT_TAG)
            since = int(raw) if raw else None
        until = challenger.tags.get(RAW_SNAPSHOT_TAG)
        tables = PipelineTables(IcebergCatalogHook(self.iceberg_conn_id).get_conn(), self.pipeline)
        gate = gate_rows(tables, int(until) if until else None, since)
        drift = None
        events = context.get("triggering_asset_events") or {}
        for asset in events:
            if getattr(asset, "name", None) == drift_asset_name(self.pipeline) and events[asset]:
                drift = dict(events[asset][-1].extra or {})
        ui = MlflowHook(self.mlflow_conn_id).ui_url()
        links = {"Evaluation report (MLflow run, artifacts evaluation/)": run_url(ui, challenger.run_id),
                 f"Challenger v{version} in the registry": model_version_url(ui, self.model_name, version)}  # fmt: skip
        if champion:
            links[f"Champion v{champion} in the registry"] = model_version_url(ui, self.model_name, champion)
        return evidence_markdown(report, gate=gate, docs_url=f"{DOCS_ROUTE}/{self.pipeline}", drift=drift,
                                 run_type=run_type(context), links={k: v for k, v in links.items() if v})  # fmt: skip

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from datetime import UTC, datetime

        from mlops_ops.hooks.mlflow import MlflowHook
        from mlops_ops.training.approval import (
            APPROVAL_AT_TAG,
            APPROVAL_BY_TAG,
            APPROVAL_COMMENT_TAG,
            APPROVED,
            decision,
            decision_tags,
        )

        if "error" in event:  # no defaults reached the task: treat as not approved, then let Airflow fail it
            return super().execute_complete(context=context, event=event)
        evaluated = context["ti"].xcom_pull(task_ids=self.evaluate_task_id) or {}
        version = str(evaluated["version"])
        against = evaluated.get("champion_version")
        outcome = decision(event["chosen_options"], approve_option=self.APPROVE, timed_out=bool(event.get("timedout")))
        user = event.get("responded_by_user") or {}
        by = str(user.get("name") or user.get("id") or "") or None
        comment = (event.get("params_input") or {}).get("comment")
        at = event.get("responded_at") or datetime.now(UTC)
        at = datetime.fromisoformat(at) if isinstance(at, str) else at
        where = f"{context['dag'].dag_id}/{context['run_id']}"
        tags = decision_tags(outcome, by=by, at=at, comment=comment, where=where,
                             against=str(against) if against else None)  # fmt: skip
        client = MlflowHook(self.mlflow_conn_id).get_conn()
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, version, key, value)
        (log.info if outcome == APPROVED else log.warning)(
            "%s v%s %s by %s%s", self.model_name, version, outcome, tags[APPROVAL_BY_TAG],
            f": {comment}" if comment else "",
        )  # fmt: skip
        result = super().execute_complete(context=context, event=event)
        return {"model_name": self.model_name, "version": version, "decision": outcome, "by": tags[APPROVAL_BY_TAG],
                "at": tags[APPROVAL_AT_TAG], "comment": tags[APPROVAL_COMMENT_TAG],
                "chosen_options": list(result["chosen_options"])}  # fmt: skip

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the version with the person's decision (who, when, comment) in its ``mlopsOps_modelVersion``."""
        from mlops_ops.lineage import openlineage as ol
        from mlops_ops.operators import openlineage as emit

        result = emit.task_result(task_instance)
        if not result.get("decision"):
            return None
        lineage = ol.model_decision(emit.tracking_uri(self.mlflow_conn_id), self.model_name, str(result["version"]),
                                    read=False, decision=result["decision"], decidedBy=result.get("by"),
                                    decidedAt=result.get("at"), comment=result.get("comment"))  # fmt: skip
        return emit.as_operator_lineage(lineage)
