"""What a drift check compares: the champion's training data and the raw data that arrived since.

* **Reference**: the ``train`` split of the feature table named by the champion's lineage
  tag ``mlops_ops.features_manifest`` (set by the training entrypoint), so it is exactly
  the data the champion learned from, not a file someone picked.
* **Current window**: admitted raw batches (quarantined ones left out) that the champion
  was not trained on and that no earlier check has seen (``since_last_check``), or that
  were committed within the last N hours/days (``24h``, ``7d``). They are featurized with
  the pipeline's own preprocess transform, so both sides have the same columns.

The monitoring state (``<lake>/<pipeline>/monitoring/_state/drift.json``) lists the
checksums of raw files already checked; it is written only after a report is saved, so a
failed check is repeated on the same window.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_ops.lake.catalog import committed_batches
from mlops_ops.lake.store import Dataset, lake_path

FEATURES_TAG = "mlops_ops.features_manifest"
STATE_FILE = "drift.json"


class NothingToCheck(Exception):
    """The check cannot run now (no champion, no lineage, no new data): the message says why."""


@dataclass
class Champion:
    version: str
    run_id: str | None
    features_manifest: str


def champion_lineage(client: Any, model_name: str) -> Champion:
    from mlops_ops.training.evaluation import CHAMPION
    from mlops_ops.training.registry import alias_version

    version = alias_version(client, model_name, CHAMPION)
    if version is None:
        raise NothingToCheck(f"model '{model_name}' has no champion yet: nothing to compare against")
    mv = client.get_model_version(model_name, version)
    manifest = (mv.tags or {}).get(FEATURES_TAG)
    if not manifest:
        raise NothingToCheck(
            f"champion {model_name} v{version} has no lineage tag {FEATURES_TAG}: the data it was trained on is "
            "unknown, so there is no reference (register models through the training entrypoint)"
        )
    return Champion(version=str(version), run_id=mv.run_id, features_manifest=manifest)


def window_start(window: str, now: datetime | None = None) -> datetime | None:
    """``None`` for ``since_last_check``; otherwise now minus ``Nh``/``Nd``."""
    match = re.fullmatch(r"(\d+)([hd])", window)
    if window == "since_last_check" or match is None:
        return None
    amount, unit = int(match.group(1)), match.group(2)
    return (now or datetime.now(UTC)) - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount))


def window_files(
    raw: Dataset,
    monitoring: Dataset,
    reference_inputs: set[str],
    window: str,
    conn_id: str | None = "aws_default",
) -> list[dict[str, Any]]:
    """Admitted raw files of the current window (see the module docstring)."""
    start = window_start(window)
    checked = set((monitoring.read_json("_state", STATE_FILE) or {}).get("checked", []))
    files: list[dict[str, Any]] = []
    for manifest_uri, entries in committed_batches(raw, conn_id, admitted_only=True):
        if start is not None:
            created = json.loads(lake_path(manifest_uri, conn_id).read_bytes()).get("created_at")
            if created is None or datetime.fromisoformat(created) < start:
                continue
            files += entries
        else:
            files += [f for f in entries if f["sha256"] not in reference_inputs and f["sha256"] not in checked]
    return files


def mark_checked(monitoring: Dataset, files: list[dict[str, Any]], report_uri: str) -> None:
    state = monitoring.read_json("_state", STATE_FILE) or {"checked": []}
    known = set(state["checked"])
    state["checked"] += [f["sha256"] for f in files if f["sha256"] not in known]
    state["last_check"] = {"at": datetime.now(UTC).isoformat(), "report": report_uri}
    monitoring.write_json(state, "_state", STATE_FILE)
