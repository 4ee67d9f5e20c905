"""Pydantic models of the pipeline YAML spec.

One file in ``dags/pipelines/*.yaml`` describes one ML pipeline: where its data comes
from (``source``), how it is prepared (``preprocess``), the data-quality gate
(``quality``), training, evaluation, promotion and drift monitoring. Every model
forbids unknown keys so typos fail loudly instead of being ignored.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from mlops_ops.durations import DURATION
from mlops_ops.training.params_schema import ESTIMATOR_PATH

IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
DOTTED_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


def _trusted(value: str) -> str:
    """A dotted path the trust model admits (:mod:`mlops_ops.callables`): never ``builtins``, ``pickle``, ``os``...;
    otherwise mlops_ops, the DAGs/plugins folder or Airflow's ``[mlops_ops] allowed_callable_modules``."""
    from mlops_ops.callables import trust_problem

    problem = trust_problem(value)
    if problem:
        raise ValueError(problem)
    return value


CallablePath = Annotated[str, Field(pattern=DOTTED_PATH), AfterValidator(_trusted)]
SCHEDULE_PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
COLUMN_TYPES = ("string", "int", "float", "bool", "timestamp")

_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def validate_schedule(value: str | None) -> str | None:
    """Accept ``None``, an Airflow preset or a 5-field cron expression (checked with croniter when present)."""
    if value is None or value in SCHEDULE_PRESETS:
        return value
    fields = value.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"must be null, one of {', '.join(SCHEDULE_PRESETS)} or a 5-field cron expression like '0 3 * * *'"
        )
    try:
        from croniter import croniter
    except ImportError:  # pragma: no cover - croniter ships with Airflow
        return value
    if not croniter.is_valid(value):
        raise ValueError("is not a valid cron expression (minute hour day-of-month month day-of-week)")
    return value


class DeadLetterSpec(_Model):
    """Where malformed records go and how many are tolerated."""

    topic: str | None = Field(default=None, min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    max_bad_share: float = Field(default=0.1, ge=0.0, le=1.0)


class KafkaSourceSpec(_Model):
    topics: list[Annotated[str, Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")]] = Field(
        min_length=1
    )
    conn_id: str = "kafka_default"
    group_id: str | None = None
    format: Literal["json"] = "json"
    deserializer: CallablePath | None = None
    schema_: dict[str, Literal["string", "int", "float", "bool", "timestamp"]] | None = Field(
        default=None, alias="schema"
    )
    max_messages: int = Field(default=1_000_000, gt=0)
    rows_per_file: int = Field(default=100_000, gt=0, le=10_000_000)
    poll_timeout_s: float = Field(default=5.0, gt=0, le=300)
    max_value_bytes: int = Field(default=1 << 20, gt=0, le=64 << 20)
    on_gap: Literal["warn", "fail"] = "warn"
    watch: bool = False
    poll_interval_s: int = Field(default=30, ge=5, le=3600)
    dead_letter: DeadLetterSpec = Field(default_factory=DeadLetterSpec)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class S3SourceSpec(_Model):
    bucket: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    prefix: str = ""
    glob: str = "*"
    format: Literal["csv", "jsonl", "parquet"]
    conn_id: str = "aws_default"
    on_change: Literal["reingest", "ignore"] = "reingest"
    schema_: dict[str, Literal["string", "int", "float", "bool", "timestamp"]] | None = Field(
        default=None, alias="schema"
    )
    rows_per_file: int = Field(default=1_000_000, gt=0, le=50_000_000)
    watch: bool = True
    poll_interval_s: int = Field(default=60, ge=5, le=3600)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SourceSpec(_Model):
    kafka: KafkaSourceSpec | None = None
    s3: S3SourceSpec | None = None

    @model_validator(mode="after")
    def _one_at_least(self) -> SourceSpec:
        if self.kafka is None and self.s3 is None:
            raise ValueError("needs at least one of 'kafka' or 's3'")
        return self


class SplitSpec(_Model):
    train: float = Field(default=0.8, gt=0, lt=1)
    validation: float = Field(default=0.1, ge=0, lt=1)
    test: float = Field(default=0.1, gt=0, lt=1)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitSpec:
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"train + validation + test must equal 1.0, got {total:g}")
        return self


class PreprocessSpec(_Model):
    transform: CallablePath | None = None
    sql: str | None = None
    params: dict[str, Any] = {}
    key_column: str
    splits: SplitSpec = Field(default_factory=SplitSpec)
    full_rebuild: bool = False

    @model_validator(mode="after")
    def _transform_or_sql(self) -> PreprocessSpec:
        if (self.transform is None) == (self.sql is None):
            raise ValueError("give exactly one of 'transform' (module.path:function) or 'sql' (path to a .sql file)")
        return self


class QualitySpec(_Model):
    suite: str = Field(min_length=1)
    engine: Literal["auto", "spark", "pandas"] = "auto"


K8S_NAME = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"  # an RFC 1123 label: namespaces, Secrets, service accounts


class ResourcesSpec(_Model):
    """What one training container asks for: the one resources model of the Docker and Kubernetes operators."""

    cpu: float = Field(default=1.0, gt=0)
    memory: str = Field(default="2Gi", pattern=r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
    gpus: int = Field(default=0, ge=0, le=16)
    gpu_type: str | None = Field(default=None, min_length=1, max_length=63)  # kubernetes: a node label value


class Toleration(_Model):
    key: str | None = None
    operator: Literal["Equal", "Exists"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


class KubernetesSpec(_Model):
    """Where and as whom the training pod runs (``train.executor: kubernetes``)."""

    namespace: str = Field(default="default", pattern=K8S_NAME)
    service_account: str | None = Field(default=None, pattern=K8S_NAME)
    image_pull_secrets: list[Annotated[str, Field(pattern=K8S_NAME)]] = []
    credentials_secret: str | None = Field(default="mlops-ops-training", pattern=K8S_NAME)  # envFrom: MLflow, S3
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    gpu_label: str = "nvidia.com/gpu.product"  # the node label ``resources.gpu_type`` selects on


class DockerSpec(_Model):
    """Which engine runs the training container and on which network (``train.executor: docker``)."""

    url: str | None = None  # default: the engine of DOCKER_HOST / the local socket
    network_mode: str | None = None  # e.g. "host" where services listen on the engine host's loopback
    mounts: list[Annotated[str, Field(pattern=r"^/[^:]*:/[^:]*(:(ro|rw))?$")]] = []  # "/host:/container[:ro]"


class ContainerSpec(_Model):
    """Everything the container operators take from ``train``: the image and the platform settings."""

    image: str = Field(min_length=1)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    docker: DockerSpec = Field(default_factory=DockerSpec)


FeatureKind = Literal["numeric", "categorical", "boolean", "timestamp"]


class ImputeSpec(_Model):
    """How missing values are filled inside the saved model (so serving fills them the same way)."""

    numeric: Literal["median", "mean", "zero"] = "median"
    categorical: Literal["missing", "most_frequent"] = "missing"  # "missing": its own category


class FeaturesSpec(_Model):
    """Which feature-table columns the model takes and how each is encoded (inside the saved model)."""

    include: list[str] | None = None  # None: every column but the target, the key and the split
    exclude: list[str] = []
    types: dict[str, FeatureKind] = {}  # otherwise inferred: numbers, booleans, strings (categorical), timestamps
    impute: ImputeSpec = Field(default_factory=ImputeSpec)
    max_categories: int = Field(default=50, ge=2, le=10_000)  # rarer categories share one "infrequent" column

    @model_validator(mode="after")
    def _disjoint(self) -> FeaturesSpec:
        both = sorted(set(self.include or []) & set(self.exclude))
        if both:
            raise ValueError(f"column(s) {', '.join(both)} are both included and excluded")
        return self


class TuneThreshold(_Model):
    """Tune a binary decision threshold on the validation split for one metric."""

    tune: str = Field(min_length=1)


class ModelSpec(_Model):
    """What the model is asked to learn and from which columns: the part of ``train`` the training runtime reads."""

    task: Literal["binary", "multiclass", "regression"]
    target: str
    positive_class: str | int | bool | None = None  # binary: default True, 1 or "1"/"true"/"yes" when present
    threshold: float | TuneThreshold = 0.5  # binary: fixed, or {tune: <metric>} on the validation split
    estimator: str | None = Field(default=None, pattern=ESTIMATOR_PATH)  # trainer sklearn: the estimator class
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    max_rows: int | None = Field(default=None, gt=0)  # sample the train split down to this many rows (in memory)

    @field_validator("task", mode="before")
    @classmethod
    def _task(cls, value: Any) -> Any:
        if value == "classification":
            raise ValueError("'classification' is now two tasks: use 'binary' (two classes) or 'multiclass'")
        return value

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float | TuneThreshold) -> float | TuneThreshold:
        if isinstance(value, float | int) and not 0.0 < float(value) < 1.0:
            raise ValueError("a fixed threshold must be strictly between 0 and 1")
        return value


class TrainSpec(ModelSpec):
    executor: Literal["local", "docker", "kubernetes"] = "local"
    trainer: str = Field(min_length=1, description="'torch_mlp', 'sklearn' or module.path:function")
    params: dict[str, Any] = {}
    # JSON Schema of a user trainer's hyper-parameters (train.params and a run's train_params must fit it); the
    # built-in trainers declare theirs (mlops_ops.training.params_schema)
    params_schema: dict[str, Any] | None = None
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    image: str | None = None  # docker / kubernetes: default mlops-ops-trainer:<version> (docker/trainer.Dockerfile)
    node_selector: dict[str, str] = {}
    tolerations: list[Toleration] = []
    kubernetes: KubernetesSpec = Field(default_factory=KubernetesSpec)
    docker: DockerSpec = Field(default_factory=DockerSpec)

    def container(self, default_image: str) -> ContainerSpec:
        """The container operators' settings: the same models, no copy."""
        return ContainerSpec(image=self.image or default_image, resources=self.resources,
                             node_selector=self.node_selector, tolerations=self.tolerations,
                             kubernetes=self.kubernetes, docker=self.docker)  # fmt: skip

    @field_validator("trainer")
    @classmethod
    def _trainer(cls, value: str) -> str:
        if value in ("torch_mlp", "sklearn"):
            return value
        if re.match(DOTTED_PATH, value):
            return _trusted(value)
        raise ValueError("must be 'torch_mlp', 'sklearn' or a dotted path 'package.module:function'")


class Threshold(_Model):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("give 'min' and/or 'max'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


class CustomMetricSpec(_Model):
    """A metric computed by ``function(y_true, y_pred)``: labels (classification) or values (regression), or
    with ``uses: probabilities`` the positive-class probability (binary) / the probability matrix (multiclass)."""

    function: CallablePath
    higher_is_better: bool = True
    uses: Literal["predictions", "probabilities"] = "predictions"


class EvaluateSpec(_Model):
    metrics: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field(min_length=1)
    thresholds: dict[str, Threshold] = {}
    max_regression: dict[str, Annotated[float, Field(ge=0)]] = {}
    custom_metrics: dict[Annotated[str, Field(pattern=IDENTIFIER)], CustomMetricSpec] = {}
    slice_column: str | None = None
    beat_baseline: bool = True  # a challenger must beat the majority-class / mean predictor on the first metric


class ApprovalSpec(_Model):
    """A person approves a blessed challenger in Airflow's Required Actions page before it becomes champion."""

    required: bool = True  # false: no approval task (e.g. a dev deployment of the same spec)
    timeout: str = Field(default="3d", pattern=r"^\d+[mhd]$")  # no answer by then: the outcome is on_timeout
    on_timeout: Literal["reject"] = "reject"  # a version nobody approved never becomes champion
    # Airflow user ids allowed to answer (Airflow checks ids, not roles); empty: anyone who may act on the DAG
    approvers: list[Annotated[str, Field(min_length=1, max_length=200)]] = []


class PromoteSpec(_Model):
    model_name: str = Field(min_length=1, max_length=200)
    aliases: list[str] = ["champion"]
    approval: ApprovalSpec | None = None


class DriftSpec(_Model):
    """Scheduled drift check of new data against the champion's training data (Evidently)."""

    schedule: str | None = "@daily"
    window: str = Field(default="since_last_check", pattern=r"^(since_last_check|\d+[hd])$")
    drift_share: float = Field(default=0.3, gt=0, le=1)
    column_threshold: float | None = Field(default=None, gt=0, lt=1)  # None: Evidently's default per test
    cooldown: str = Field(default="6h", pattern=r"^\d+[mhd]$")
    max_rows: int = Field(default=200_000, gt=0, le=10_000_000)
    # backfill runs record drift history only; true: their drift signals start retraining like any run's
    backfill_retrains: bool = False

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return validate_schedule(value)


class RetrainSpec(_Model):
    """External triggers of the training DAG besides its schedule and the drift signal."""

    control_topic: str | None = Field(default=None, min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    control_conn_id: str = "kafka_default"
    # requests within this time after the last one served are passed over (logged): whoever can produce to the
    # topic cannot keep retraining running back to back (N18); "0m" serves every request
    control_cooldown: str = Field(default="1h", pattern=r"^\d+[mhd]$")
    on_drift: bool = True
    on_new_data: bool = True


class TimeoutsSpec(_Model):
    """Each stage's ``execution_timeout`` (``30m``, ``6h``, ``2d``): a task still running then is failed (and retried),
    so a runaway job (``{"epochs": 1e9}``) cannot hold a worker for ever. The approval wait has its own timeout."""

    ingest: str = Field(default="1h", pattern=DURATION)
    preprocess: str = Field(default="2h", pattern=DURATION)
    quality: str = Field(default="1h", pattern=DURATION)
    train: str = Field(default="12h", pattern=DURATION)
    evaluate: str = Field(default="1h", pattern=DURATION)
    promote: str = Field(default="15m", pattern=DURATION)
    drift: str = Field(default="1h", pattern=DURATION)


class PipelineSpec(_Model):
    """A whole pipeline; ``pipeline`` becomes the prefix of its DAG ids."""

    pipeline: str = Field(pattern=IDENTIFIER)
    description: str = ""
    owners: list[str] = ["mlops"]
    tags: list[str] = []
    schedule: str | None = None
    start_date: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    lake: str | None = Field(default=None, pattern=r"^(s3://[a-z0-9][a-z0-9.-]+[a-z0-9](/.*)?|file://.+|/.+)$")
    retries: int = Field(default=2, ge=0, le=20)
    timeouts: TimeoutsSpec = TimeoutsSpec()
    source: SourceSpec | None = None
    preprocess: PreprocessSpec | None = None
    quality: QualitySpec | None = None
    train: TrainSpec | None = None
    evaluate: EvaluateSpec | None = None
    promote: PromoteSpec | None = None
    drift: DriftSpec | None = None
    retrain: RetrainSpec | None = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return validate_schedule(value)

    @field_validator("start_date")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    @model_validator(mode="after")
    def _stages_consistent(self) -> PipelineSpec:
        if self.source is None:
            raise ValueError("a pipeline needs a 'source' stage")
        needs = {"evaluate": "train", "promote": "evaluate", "quality": "source", "train": "preprocess",
                 "drift": "promote", "retrain": "train"}  # fmt: skip
        for stage, required in needs.items():
            if getattr(self, stage) is not None and getattr(self, required) is None:
                raise ValueError(f"stage '{stage}' needs stage '{required}'")
        if self.schedule in ("@once", "@continuous") and (self.drift is not None or self.retrain is not None):
            raise ValueError(
                f"schedule '{self.schedule}' cannot be combined with retraining triggers (drift, retrain): "
                "use null, a preset like @daily or a cron expression"
            )
        return self

    def stages(self) -> list[str]:
        """Names of the stages present, in pipeline order (``source.kafka`` etc. for sources)."""
        out: list[str] = []
        if self.source is not None:
            out += [f"source.{kind}" for kind in ("kafka", "s3") if getattr(self.source, kind) is not None]
        stages = ("quality", "preprocess", "train", "evaluate", "promote", "drift", "retrain")
        out += [s for s in stages if getattr(self, s)]
        return out


def _executor_checks(train: TrainSpec) -> list[tuple[tuple[str | int, ...], str, Any]]:
    """Container settings that the chosen executor would ignore are refused, not dropped."""
    out: list[tuple[tuple[str | int, ...], str, Any]] = []
    # "given" = differs from its default (a spec written back with every field, as the test runner does, is fine)
    fields = TrainSpec.model_fields
    given = {name for name in ("image", "resources", "node_selector", "tolerations", "kubernetes", "docker")
             if getattr(train, name) != fields[name].get_default(call_default_factory=True)}  # fmt: skip
    kubernetes_only = [f for f in ("node_selector", "tolerations", "kubernetes") if f in given]
    if train.executor != "kubernetes":
        out += [(("train", f), f"applies to executor 'kubernetes' only, not '{train.executor}'", None)
                for f in kubernetes_only]  # fmt: skip
    if train.executor != "docker" and "docker" in given:
        out.append((("train", "docker"), f"applies to executor 'docker' only, not '{train.executor}'", None))
    if train.executor == "local" and ({"image", "resources"} & given):
        for f in sorted({"image", "resources"} & given):
            out.append((("train", f), "applies to executors 'docker' and 'kubernetes'; 'local' trains in the worker "
                        "(use a pool or the worker's size to bound it)", None))  # fmt: skip
    if train.executor == "docker" and train.resources.gpu_type is not None:
        out.append((("train", "resources", "gpu_type"), "applies to executor 'kubernetes' (a node label); Docker "
                    "takes the engine's GPUs by count", train.resources.gpu_type))  # fmt: skip
    if train.resources.gpu_type is not None and not train.resources.gpus:
        out.append((("train", "resources", "gpu_type"), "set resources.gpus too (how many of that type)",
                    train.resources.gpu_type))  # fmt: skip
    return out


def _params_checks(train: TrainSpec) -> list[tuple[tuple[str | int, ...], str, Any]]:
    from mlops_ops.training.params_schema import problems, schema_for, schema_problem

    if train.params_schema is not None:
        if train.trainer in ("sklearn", "torch_mlp"):
            return [(("train", "params_schema"), f"trainer '{train.trainer}' declares its own parameters", None)]
        problem = schema_problem(train.params_schema)
        if problem:
            return [(("train", "params_schema"), problem, None)]
    schema = schema_for(train.trainer, train.params_schema)
    return [(("train", "params"), f"{line} (allowed: see the trainer's parameter schema)", None)
            for line in problems(train.params, schema)]  # fmt: skip


def cross_checks(spec: PipelineSpec) -> list[tuple[tuple[str | int, ...], str, Any]]:
    """Problems between stages (where a metric fits the task, a threshold names a computed metric, ...):
    ``(location, message, given)`` each, so the loader can name the file, line and field."""
    from mlops_ops.training.tasks import TUNABLE, estimator_problem, metric_problem

    out: list[tuple[tuple[str | int, ...], str, Any]] = []
    train, ev = spec.train, spec.evaluate
    if train is not None:
        binary = train.task == "binary"
        if train.positive_class is not None and not binary:
            out.append((("train", "positive_class"), f"applies to task 'binary' only, not '{train.task}'",
                        train.positive_class))  # fmt: skip
        if isinstance(train.threshold, TuneThreshold):
            if not binary:
                out.append((("train", "threshold"), f"applies to task 'binary' only, not '{train.task}'", None))
            elif train.threshold.tune not in TUNABLE:
                out.append((("train", "threshold", "tune"), f"a threshold can be tuned for {', '.join(TUNABLE)}",
                            train.threshold.tune))  # fmt: skip
        elif train.threshold != 0.5 and not binary:
            out.append((("train", "threshold"), f"applies to task 'binary' only, not '{train.task}'", train.threshold))
        if train.estimator is not None:
            if train.trainer != "sklearn":
                out.append((("train", "estimator"), f"applies to trainer 'sklearn' only, not '{train.trainer}'",
                            train.estimator))  # fmt: skip
            else:
                problem = estimator_problem(train.task, train.estimator)
                if problem:
                    out.append((("train", "estimator"), problem, None))
        if train.max_rows is not None and train.trainer == "torch_mlp":
            out.append((("train", "max_rows"), "torch_mlp streams the whole split in batches; max_rows samples "
                        "for trainers that hold the data in memory (sklearn, your own)", train.max_rows))  # fmt: skip
        out.extend(_params_checks(train))
        out.extend(_executor_checks(train))
        key = spec.preprocess.key_column if spec.preprocess is not None else None
        for field_name in ("include", "exclude"):
            for i, column in enumerate(getattr(train.features, field_name) or []):
                if column in (train.target, key):
                    what = "the target" if column == train.target else "the key column"
                    out.append((("train", "features", field_name, i), f"'{column}' is {what}, not a feature", None))
    if ev is not None and train is not None:
        custom = frozenset(ev.custom_metrics)
        for i, name in enumerate(ev.metrics):
            problem = metric_problem(train.task, name, custom)
            if problem:
                out.append((("evaluate", "metrics", i), problem, None))
        for section in ("thresholds", "max_regression"):
            for name in getattr(ev, section):
                if name not in ev.metrics:
                    out.append(((("evaluate", section, name)), f"names metric '{name}', which evaluate.metrics does "
                                f"not compute (computed: {', '.join(ev.metrics)}); add it there or remove this",
                                None))  # fmt: skip
        for name in custom:
            if name not in ev.metrics:
                out.append((("evaluate", "custom_metrics", name), "is defined but not listed in evaluate.metrics",
                            None))  # fmt: skip
    return out
