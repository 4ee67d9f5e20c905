"""Exceptions raised by mlops-ops.

Every error a user can cause says where (file, field) and what is allowed, so it
reads well in the Airflow "Import errors" panel and in a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass


class MlopsOpsError(Exception):
    """Base class of every error raised by mlops-ops."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem found in a pipeline spec."""

    field: str
    message: str
    given: object = None
    line: int | None = None

    def render(self) -> str:
        where = f"line {self.line}, " if self.line is not None else ""
        return f"{where}field '{self.field}': {self.render_message()}"

    def render_message(self) -> str:
        """The message with the given value, without the place."""
        return self.message + ("" if self.given is None else f" (given: {_short(self.given)})")


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class SpecError(MlopsOpsError, ValueError):
    """A pipeline spec is invalid: lists every problem with file, field, given value and what is allowed."""

    def __init__(self, source: str, problems: list[SpecProblem]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = [f"Invalid pipeline spec {source}: {len(self.problems)} problem(s)"]
        lines += [f"  - {source}: {p.render()}" for p in self.problems]
        super().__init__("\n".join(lines))


class StageNotSupportedError(MlopsOpsError):
    """A spec uses a stage whose operator is not built yet."""

    def __init__(self, source: str, stage: str, supported: list[str]) -> None:
        self.source = source
        self.stage = stage
        super().__init__(
            f"{source}: stage '{stage}' is not supported yet by this version of mlops-ops "
            f"(supported stages: {', '.join(supported)}). Remove it from the spec or upgrade mlops-ops."
        )


class TrainingInputError(MlopsOpsError, ValueError):
    """A training request that cannot train, and would not on a retry: the pinned features snapshot, the spec's model
    settings, the trainer or its params (a target or feature column the table lacks, one class, an unknown trainer).
    The training entrypoint exits with ``NOT_RETRYABLE_EXIT`` and the training operators fail without retries."""


# sysexits' EX_DATAERR: the training entrypoint's exit code for a TrainingInputError (any other failure may be
# transient: a service down, a killed process, memory)
NOT_RETRYABLE_EXIT = 65


class MissingExtraError(MlopsOpsError, ImportError):
    """An optional dependency is not installed."""

    def __init__(self, module: str, extra: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"mlops-ops needs the '{module}' package for this feature; install it with: "
            f"pip install 'mlops-ops[{extra}]'"
        )


class LakeNotConfiguredError(MlopsOpsError, ValueError):
    """No lake folder was given: mlops-ops never picks a bucket on its own (bucket names are global)."""

    def __init__(self) -> None:
        super().__init__(
            "no lake folder is configured for Data Docs and drift reports: set the Airflow Variable 'mlops_ops_lake' "
            "(e.g. AIRFLOW_VAR_MLOPS_OPS_LAKE=s3://<your-bucket>/mlops) or 'lake:' in the pipeline spec"
        )


class StackError(MlopsOpsError):
    """The embedded stack could not be started, checked or stopped."""


class IngestError(MlopsOpsError):
    """Ingestion could not complete; nothing was committed."""


class EmptyInputError(MlopsOpsError):
    """A stage has no rows to work on; operators turn this into a skip of the stage and its downstream."""


class QualityGateFailed(MlopsOpsError):
    """A batch failed blocking (critical) expectations and was quarantined."""


class LakeSchemaError(MlopsOpsError, ValueError):
    """New data does not fit a lake table's schema in a way Iceberg can evolve (the message names the column)."""


class LakeWriterError(MlopsOpsError):
    """A writer that would break the table's one-writer rule: a run that publishes without the quality gate on a
    table whose source a gate decides (N3). Refused before anything is read or written; retrying cannot help."""


class LakeConflictError(MlopsOpsError):
    """A lake commit lost a race: the table moved away from the snapshot or positions the run started from.

    Nothing of the losing run is visible; a retry starts from where the winner ended."""


class GxContextMissingError(MlopsOpsError, FileNotFoundError):
    """No Great Expectations context where one was looked for."""
