"""Drift-check benchmark: the library's ``compute_drift`` versus Evidently called directly, same frames.

Reference and current frames of 100,000 rows x 20 columns (15 numeric, 5 categorical;
the current one has 5 shifted columns). The library side is everything the drift task
does with them: column typing, Evidently's data-drift preset with tests, reading the
per-column verdicts, and the HTML report. The direct side is the same preset and tests
run by hand with an explicit ``DataDefinition``, the result read with ``snapshot.dict()``
and the same HTML rendered. Median of 5, the two sides alternating, one process.
Ratio = library / direct (target <= 1.1). Peak RSS is the process high-water mark after
both (they share a process). Results go to ``bench/results/drift.json``.
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REPEATS = 5
ROWS, NUMERIC, CATEGORICAL = 100_000, 15, 5


def frames() -> tuple[Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)

    def frame(shift: bool) -> Any:
        data: dict[str, Any] = {}
        for i in range(NUMERIC):
            data[f"num_{i}"] = rng.normal(loc=0.5 if shift and i < 4 else 0.0, size=ROWS)
        for i in range(CATEGORICAL):
            weights = [0.1, 0.2, 0.7] if shift and i == 0 else [0.4, 0.3, 0.3]
            data[f"cat_{i}"] = rng.choice(["a", "b", "c"], size=ROWS, p=weights)
        return pd.DataFrame(data)

    return frame(False), frame(True)


def library(reference: Any, current: Any) -> tuple[int, int]:
    from mlops_ops.monitoring.drift import compute_drift

    result, snapshot = compute_drift(reference, current, drift_share=0.3)
    html = snapshot.get_html_str(as_iframe=False)
    return len(result.drifted_columns), len(html)


def direct(reference: Any, current: Any) -> tuple[int, int]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    numeric = [c for c in reference.columns if c.startswith("num_")]
    definition = DataDefinition(numerical_columns=numeric, categorical_columns=[c for c in reference.columns
                                                                                if c not in numeric])  # fmt: skip
    report = Report([DataDriftPreset(columns=list(reference.columns), drift_share=0.3)], include_tests=True)
    snapshot = report.run(Dataset.from_pandas(current, data_definition=definition),
                          Dataset.from_pandas(reference, data_definition=definition))  # fmt: skip
    drifted = sum(1 for t in snapshot.dict()["tests"] if t["name"].startswith("Value Drift") and t["status"] == "FAIL")
    return drifted, len(snapshot.get_html_str(as_iframe=False))


def main() -> None:
    reference, current = frames()
    times: dict[str, list[float]] = {"library": [], "direct": []}
    outputs: dict[str, tuple[int, int]] = {}
    for i in range(REPEATS):
        order = [("library", library), ("direct", direct)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            outputs[name] = fn(reference, current)
            times[name].append(time.perf_counter() - started)
    assert outputs["library"][0] == outputs["direct"][0], outputs  # same verdicts
    lib, raw = statistics.median(times["library"]), statistics.median(times["direct"])
    result = {
        "rows": ROWS, "columns": NUMERIC + CATEGORICAL, "drifted_columns": outputs["library"][0],
        "library_s": round(lib, 3), "direct_s": round(raw, 3), "ratio": round(lib / raw, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "runs": {k: [round(v, 3) for v in vs] for k, vs in times.items()},
    }  # fmt: skip
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
