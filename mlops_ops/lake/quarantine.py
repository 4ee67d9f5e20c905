"""Quarantine of ingested batches that failed a quality gate, and their release.

A batch is one ingest manifest. Quarantining it writes ``_quarantine/<batch>.json``
(the manifest URI, the failed expectations and where the full validation result
lies); the data files stay where they are, so nothing is lost and a release needs no
copy. Readers of the dataset (:func:`admitted_manifests`) leave out quarantined
batches until one is released; a release records who, why and when, and a later
quarantine of the same batch (re-validated after a fix) starts a new entry in
``history``. Writing the same record twice changes nothing, so a re-run is idempotent.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from mlops_ops.lake.store import Dataset

FOLDER = "_quarantine"


def batch_id(manifest_uri: str) -> str:
    """A short stable name for the batch of a manifest (its file name without ``.json``)."""
    name = manifest_uri.rstrip("/").rsplit("/", 1)[-1]
    stem = name[:-5] if name.endswith(".json") else name
    return stem or hashlib.sha256(manifest_uri.encode()).hexdigest()[:16]


def status(dataset: Dataset, manifest_uri: str) -> dict[str, Any] | None:
    """The quarantine record of a batch, or ``None`` if it was never quarantined."""
    record: dict[str, Any] | None = dataset.read_json(FOLDER, f"{batch_id(manifest_uri)}.json")
    return record


def is_blocked(record: dict[str, Any] | None) -> bool:
    return record is not None and record.get("state") == "quarantined"


def quarantine(dataset: Dataset, manifest_uri: str, *, suite: str, failures: list[dict[str, Any]],
               result_uri: str | None, run_id: str | None) -> dict[str, Any]:  # fmt: skip
    """Record that a batch failed its gate. Idempotent for the same run."""
    record = status(dataset, manifest_uri) or {"batch": batch_id(manifest_uri), "manifest_uri": manifest_uri,
                                               "history": []}  # fmt: skip
    entry = {"event": "quarantined", "at": datetime.now(UTC).isoformat(), "suite": suite, "run_id": run_id,
             "failures": failures, "validation_result": result_uri}  # fmt: skip
    last = record["history"][-1] if record["history"] else None
    if not (last and last["event"] == "quarantined" and last.get("run_id") == run_id and run_id is not None):
        record["history"].append(entry)
    record.update(state="quarantined", suite=suite, failures=failures, validation_result=result_uri)
    dataset.write_json(record, FOLDER, f"{record['batch']}.json")
    return record


def release(dataset: Dataset, manifest_uri_or_batch: str, *, by: str, reason: str) -> dict[str, Any]:
    """Re-admit a quarantined batch, recording who and why."""
    if not by.strip() or not reason.strip():
        raise ValueError("a release needs both who releases the batch (by) and why (reason)")
    record = status(dataset, manifest_uri_or_batch)
    if record is None:
        known = [r["batch"] for r in quarantined_batches(dataset)]
        raise LookupError(
            f"no quarantined batch '{batch_id(manifest_uri_or_batch)}' in {dataset.root}; "
            f"quarantined batches: {', '.join(known) or 'none'}"
        )
    if record["state"] != "quarantined":
        return record
    record["history"].append({"event": "released", "at": datetime.now(UTC).isoformat(), "by": by, "reason": reason})
    record.update(state="released", released_by=by, release_reason=reason)
    dataset.write_json(record, FOLDER, f"{record['batch']}.json")
    return record


def quarantined_batches(dataset: Dataset) -> list[dict[str, Any]]:
    folder = dataset.path(FOLDER)
    if not folder.exists():
        return []
    out = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.endswith(".json") and not path.name.startswith("."):
            record = dataset.read_json(FOLDER, path.name)
            if record:
                out.append(record)
    return out
