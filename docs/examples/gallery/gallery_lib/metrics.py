"""A custom evaluation metric (``evaluate.custom_metrics``): ``fn(y_true, y_pred) -> float``."""

from __future__ import annotations

from typing import Any


def within_10pct(y_true: Any, y_pred: Any) -> float:
    """Share of predicted prices within 10 % of the sale price (what the valuation team reports)."""
    import numpy as np

    truth, guess = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    return float(np.mean(np.abs(guess - truth) <= 0.1 * np.abs(truth)))
