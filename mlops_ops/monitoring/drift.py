"""Drift between a reference frame and a current frame, judged by Evidently 0.7.

Evidently picks the statistical test per column (K-S or chi-square/Z-test p-values on
small data, Wasserstein or Jensen-Shannon distances on large data) and says per column
whether it drifted; this module only reads its verdicts, so the numbers in the report
and in the Asset event are the same. Columns present on one side only are schema drift:
reported by name and counted as drift, since the model cannot score such data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_ops._extras import require

PREDICTION = "_prediction"


@dataclass
class DriftResult:
    drifted: bool
    drift_share: float
    columns_checked: int
    drifted_columns: dict[str, float]  # column -> Evidently's drift score (a p-value or a distance)
    methods: dict[str, str]  # column -> the test Evidently used
    missing_columns: list[str] = field(default_factory=list)  # in the reference, not in the current data
    new_columns: list[str] = field(default_factory=list)  # in the current data, not in the reference
    prediction_drift: dict[str, Any] | None = None  # {"score", "method", "drifted"}
    target_drift: dict[str, Any] | None = None
    reference_rows: int = 0
    current_rows: int = 0

    @property
    def schema_drift(self) -> bool:
        return bool(self.missing_columns or self.new_columns)

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "schema_drift": self.schema_drift}


def compute_drift(
    reference: Any,
    current: Any,
    *,
    columns: list[str] | None = None,
    prediction_column: str | None = None,
    target_column: str | None = None,
    drift_share: float = 0.3,
    column_threshold: float | None = None,
) -> tuple[DriftResult, Any]:
    """Evidently's data drift on ``columns`` (default: all shared) plus prediction and target drift.

    Returns the result and Evidently's snapshot (for the HTML and JSON report).
    ``drifted`` is true when the share of drifted columns reaches ``drift_share``, the
    prediction drifted, or the schema changed.
    """
    require("evidently", "evidently")
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    special = {c for c in (prediction_column, target_column) if c}
    wanted = list(columns) if columns is not None else [c for c in reference.columns if c not in special]
    missing = [c for c in wanted if c not in current.columns]
    new = [c for c in current.columns if c not in reference.columns and c not in special]
    checked = [c for c in wanted if c in current.columns]
    if not checked:
        raise ValueError(
            f"no column to compare: reference has {', '.join(map(str, reference.columns))}; "
            f"current has {', '.join(map(str, current.columns))}"
        )
    extra_metrics: list[Any] = []
    value_columns = [c for c in (prediction_column, target_column) if c and c in current.columns and c in reference]
    for column in value_columns:
        extra_metrics.append(ValueDrift(column=column, threshold=column_threshold) if column_threshold
                             else ValueDrift(column=column))  # fmt: skip
    used = checked + value_columns
    definition = _definition(reference[used], DataDefinition)
    preset = DataDriftPreset(columns=checked, drift_share=drift_share,
                             **({"threshold": column_threshold} if column_threshold else {}))  # fmt: skip
    report = Report([preset, *extra_metrics], include_tests=True)
    snapshot = report.run(
        Dataset.from_pandas(current[used], data_definition=definition),
        Dataset.from_pandas(reference[used], data_definition=definition),
    )
    verdicts = _column_verdicts(snapshot.dict())
    drifted_columns = {c: v["score"] for c, v in verdicts.items() if c in checked and v["drifted"]}
    share = len(drifted_columns) / len(checked)
    value_drift = {c: verdicts[c] for c in value_columns if c in verdicts}
    prediction = value_drift.get(prediction_column or "")
    result = DriftResult(
        drifted=share >= drift_share or bool(prediction and prediction["drifted"]) or bool(missing or new),
        drift_share=share,
        columns_checked=len(checked),
        drifted_columns=drifted_columns,
        methods={c: v["method"] for c, v in verdicts.items() if c in checked},
        missing_columns=missing,
        new_columns=new,
        prediction_drift=prediction,
        target_drift=value_drift.get(target_column or ""),
        reference_rows=len(reference),
        current_rows=len(current),
    )
    return result, snapshot


def _definition(frame: Any, DataDefinition: Any) -> Any:
    """Numbers are numerical, everything else categorical (Evidently's own inference guesses from cardinality)."""
    numeric = [c for c in frame.columns if frame[c].dtype.kind in "iuf"]
    categorical = [c for c in frame.columns if c not in numeric]
    return DataDefinition(numerical_columns=numeric, categorical_columns=categorical)


def _column_verdicts(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column: Evidently's score, method and verdict, read from its ``ValueDrift`` metrics and tests."""
    scores: dict[str, dict[str, Any]] = {}
    by_metric: dict[str, str] = {}
    for metric in report["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":ValueDrift"):
            scores[config["column"]] = {"score": float(metric["value"]), "method": str(config.get("method")),
                                        "drifted": False}  # fmt: skip
            by_metric[metric["id"]] = config["column"]
    for test in report.get("tests", []):
        column = by_metric.get(test.get("metric_config", {}).get("metric_id", ""))
        if column is not None:
            scores[column]["drifted"] = test.get("status") == "FAIL"
    return scores
