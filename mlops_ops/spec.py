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

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

IDENTIFIER = r"^[a-z][a-z0-9_]{0,62}$"
DOTTED_PATH = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
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
    deserializer: str | None = Field(default=None, pattern=DOTTED_PATH)
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
    transform: str | None = Field(default=None, pattern=DOTTED_PATH)
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


class ResourcesSpec(_Model):
    cpu: float = Field(default=1.0, gt=0)
    memory: str = Field(default="2Gi", pattern=r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|K|M|G|T)?$")
    gpus: int = Field(default=0, ge=0, le=16)


class TrainSpec(_Model):
    executor: Literal["local", "docker", "kubernetes"] = "local"
    trainer: str = Field(min_length=1, description="'torch_mlp', 'sklearn' or module.path:function")
    task: Literal["classification", "regression"]
    target: str
    params: dict[str, Any] = {}
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    image: str | None = None
    node_selector: dict[str, str] = {}
    tolerations: list[dict[str, str]] = []

    @field_validator("trainer")
    @classmethod
    def _trainer(cls, value: str) -> str:
        if value in ("torch_mlp", "sklearn") or re.match(DOTTED_PATH, value):
            return value
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


METRICS = ("accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2")
Metric = Literal["accuracy", "f1", "roc_auc", "log_loss", "rmse", "mae", "r2"]


class EvaluateSpec(_Model):
    metrics: list[Metric] = Field(min_length=1)
    thresholds: dict[Metric, Threshold] = {}
    max_regression: dict[Metric, Annotated[float, Field(ge=0)]] = {}
    slice_column: str | None = None


class PromoteSpec(_Model):
    model_name: str = Field(min_length=1, max_length=200)
    aliases: list[str] = ["champion"]


class DriftSpec(_Model):
    """Scheduled drift check of new data against the champion's training data (Evidently)."""

    schedule: str | None = "@daily"
    window: str = Field(default="since_last_check", pattern=r"^(since_last_check|\d+[hd])$")
    drift_share: float = Field(default=0.3, gt=0, le=1)
    column_threshold: float | None = Field(default=None, gt=0, lt=1)  # None: Evidently's default per test
    cooldown: str = Field(default="6h", pattern=r"^\d+[mhd]$")
    max_rows: int = Field(default=200_000, gt=0, le=10_000_000)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return validate_schedule(value)


class RetrainSpec(_Model):
    """External triggers of the training DAG besides its schedule and the drift signal."""

    control_topic: str | None = Field(default=None, min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    control_conn_id: str = "kafka_default"
    on_drift: bool = True
    on_new_data: bool = True


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
