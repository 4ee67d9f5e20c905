from __future__ import annotations

from pathlib import Path

import pytest

from mlops_ops.lake import quarantine
from mlops_ops.lake.store import Dataset

URI = "file:///lake/churn/raw/manifests/kafka-abc123.json"
FAILURES = [{"expectation": "expect_column_values_to_not_be_null", "column": "customer_id", "observed": 3}]


def test_quarantine_is_idempotent_per_run_and_release_records_who_and_why(tmp_path: Path) -> None:
    raw = Dataset.at(str(tmp_path), "churn", "raw")
    assert quarantine.status(raw, URI) is None and quarantine.batch_id(URI) == "kafka-abc123"
    first = quarantine.quarantine(raw, URI, suite="s", failures=FAILURES, result_uri="p.html", run_id="r1")
    again = quarantine.quarantine(raw, URI, suite="s", failures=FAILURES, result_uri="p.html", run_id="r1")
    assert first == again and len(again["history"]) == 1 and quarantine.is_blocked(again)
    with pytest.raises(ValueError, match="who releases the batch"):
        quarantine.release(raw, "kafka-abc123", by=" ", reason="fine")
    released = quarantine.release(raw, "kafka-abc123", by="dana", reason="override: known supplier glitch")
    assert released["state"] == "released" and not quarantine.is_blocked(released)
    assert [h["event"] for h in released["history"]] == ["quarantined", "released"]
    assert quarantine.release(raw, URI, by="eve", reason="again") == released  # releasing twice changes nothing
    later = quarantine.quarantine(raw, URI, suite="s", failures=FAILURES, result_uri=None, run_id="r2")
    assert [h["event"] for h in later["history"]] == ["quarantined", "released", "quarantined"]
    assert [r["batch"] for r in quarantine.quarantined_batches(raw)] == ["kafka-abc123"]


def test_release_of_unknown_batch_lists_the_known_ones(tmp_path: Path) -> None:
    raw = Dataset.at(str(tmp_path), "churn", "raw")
    quarantine.quarantine(raw, URI, suite="s", failures=[], result_uri=None, run_id="r1")
    with pytest.raises(LookupError, match="quarantined batches: kafka-abc123"):
        quarantine.release(raw, "kafka-zzz", by="dana", reason="x")
