"""``TrainModelKubernetesOperator``: the training entrypoint in a pod of the trainer image
(``train.executor: kubernetes``), as Airflow's own ``KubernetesPodOperator``: its retries, ``on_kill`` (deletes the
pod), logs and XCom sidecar, which returns the entrypoint's result file (``/airflow/xcom/return.json``).

Everything a platform team sets comes from the spec: namespace, service account, image pull secrets, the Secret the
credentials come from (``envFrom``: MLflow's and S3's variables, never in the rendered fields), node selector,
tolerations and GPUs (``nvidia.com/gpu`` limits; ``resources.gpu_type`` selects nodes by ``kubernetes.gpu_label``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from mlops_ops.exceptions import NOT_RETRYABLE_EXIT
from mlops_ops.operators.training_request import ENTRYPOINT, TrainingInputs, TrainingRequest, raise_not_retryable_exit
from mlops_ops.spec import ContainerSpec
from mlops_ops.ui.links import MlflowRunLink, ModelVersionLink

if TYPE_CHECKING:
    from airflow.sdk import Context

XCOM_RESULT = "/airflow/xcom/return.json"  # where KubernetesPodOperator's sidecar reads the result


def _label(value: str) -> str:
    """A valid label value: at most 63 of [A-Za-z0-9._-], starting and ending alphanumeric."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", value)[:63].strip("-_.") or "x"


class TrainModelKubernetesOperator(KubernetesPodOperator):
    """Train in a pod of the trainer image; register a version with alias ``challenger``.

    :param training: what to train (:class:`~mlops_ops.operators.training_request.TrainingRequest` or its fields).
    :param container: image, resources, node selector, tolerations and ``kubernetes`` settings
        (:class:`~mlops_ops.spec.ContainerSpec` or its JSON).
    """

    template_fields: Sequence[str] = (*KubernetesPodOperator.template_fields, "training")
    operator_extra_links = (MlflowRunLink(), ModelVersionLink())
    ui_color = "#f3e8fd"

    def __init__(
        self,
        *,
        training: TrainingRequest | Mapping[str, Any],
        container: ContainerSpec | Mapping[str, Any],
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        from kubernetes.client import models as k8s

        request = TrainingRequest.of(training)
        spec = container if isinstance(container, ContainerSpec) else ContainerSpec.model_validate(container)
        kube, res = spec.kubernetes, spec.resources
        quantity = {"cpu": f"{res.cpu:g}", "memory": res.memory}
        limits = {**quantity, **({"nvidia.com/gpu": str(res.gpus)} if res.gpus else {})}
        node_selector = {**spec.node_selector, **({kube.gpu_label: res.gpu_type} if res.gpu_type else {})}
        secret = kube.credentials_secret
        tolerations = [k8s.V1Toleration(**t.model_dump(exclude_none=True)) for t in spec.tolerations]
        task_id = str(kwargs.get("task_id", "train"))
        labels = {"app.kubernetes.io/name": "mlops-ops-trainer", "mlops-ops/pipeline": _label(request.pipeline),
                  "mlops-ops/model": _label(request.model_name)}  # fmt: skip
        super().__init__(
            name=f"train-{task_id}".replace("_", "-").lower(),
            namespace=kube.namespace,
            service_account_name=kube.service_account,
            image=spec.image,
            image_pull_policy=kube.image_pull_policy,
            image_pull_secrets=[k8s.V1LocalObjectReference(name=s) for s in kube.image_pull_secrets] or None,
            cmds=list(ENTRYPOINT),
            arguments=[],
            env_from=[k8s.V1EnvFromSource(secret_ref=k8s.V1SecretEnvSource(name=secret))] if secret else None,
            container_resources=k8s.V1ResourceRequirements(requests=quantity, limits=limits),
            node_selector=node_selector or None,
            tolerations=tolerations or None,
            labels=labels,
            get_logs=True,
            do_xcom_push=True,
            on_finish_action="delete_pod",
            skip_on_exit_code=NOT_RETRYABLE_EXIT,  # the provider's exit-code hook: turned into a failure below
            **kwargs,
        )
        self.training = request
        self.container_spec = spec
        self.mlflow_conn_id = mlflow_conn_id

    def prepare(self, inputs: TrainingInputs, tracking_uri: str) -> None:
        """Set the pod's arguments and plain environment for one run (the credentials come from the Secret)."""
        from kubernetes.client import models as k8s

        self.arguments = self.training.arguments(inputs, XCOM_RESULT)
        self.env_vars = [k8s.V1EnvVar(name="MLFLOW_TRACKING_URI", value=tracking_uri),
                         k8s.V1EnvVar(name="PYTHONUNBUFFERED", value="1")]  # fmt: skip

    def execute(self, context: Context) -> Any:
        from mlops_ops.hooks.mlflow import MlflowHook

        inputs = self.training.inputs(context, self.task_id, self.mlflow_conn_id)
        self.prepare(inputs, MlflowHook(self.mlflow_conn_id).client_env()["MLFLOW_TRACKING_URI"])
        try:
            output = super().execute(context)
        except BaseException as err:
            self.training.fail_open_runs(self.mlflow_conn_id, inputs)
            raise_not_retryable_exit(err, f"the trainer's pod of {self.image}")
            raise
        return self.training.result(output, f"pod of {self.image}")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Lineage: the features snapshot -> the registered model version; the MLflow run as a run facet."""
        # the pod reads the catalog from its credentials secret; the worker's catalog connection names it here
        return self.training.lineage(task_instance, self.mlflow_conn_id, "iceberg_default")
