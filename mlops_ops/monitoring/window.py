"""What a drift check compares: the champion's training data and the raw data that arrived since.

* **Reference**: the ``train`` split of the feature-table snapshot named by the champion's lineage tag
  ``mlops_ops.features_snapshot`` (set by the training entrypoint), read by time travel: exactly the data
  the champion learned from, whatever was built since.
* **Current window**: files that snapshots of ``raw``'s ``main`` added after the champion's own raw
  snapshot (tag ``mlops_ops.raw_snapshot``), and after the raw snapshot the last check covered
  (``since_last_check``), or within the N hours/days (``24h``, ``7d``) before the run's end of window (now for
  scheduled and asset-triggered runs; the data interval's end for backfill and manual runs, so a run for a past
  day checks that day). Quarantined batches are never on
  ``main``. They are featurized with the pipeline's own preprocess transform, so both sides have the same
  columns.

Checks are rows of ``<pipeline>.drift_checks`` (raw snapshot covered, champion version, verdict, report),
appended only after the report is saved, so a failed check is repeated on the same window.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops_ops.lake import transaction

FEATURES_TAG = "mlops_ops.features_snapshot"
RAW_SNAPSHOT_TAG = "mlops_ops.raw_snapshot"


class NothingToCheck(Exception):
    """The check cannot run now (no champion, no lineage, no new data): the message says why."""


@dataclass
class Champion:
    version: str
    run_id: str | None
    features: str
    raw_snapshot: int | None


def champion_lineage(client: Any, model_name: str) -> Champion:
    from mlops_ops.training.evaluation import CHAMPION
    from mlops_ops.training.registry import alias_version

    version = alias_version(client, model_name, CHAMPION)
    if version is None:
        raise NothingToCheck(f"model '{model_name}' has no champion yet: nothing to compare against")
    mv = client.get_model_version(model_name, version)
    tags = mv.tags or {}
    if not tags.get(FEATURES_TAG):
        raise NothingToCheck(
            f"champion {model_name} v{version} has no lineage tag {FEATURES_TAG}: the data it was trained on is "
            "unknown, so there is no reference (register models through the training entrypoint)"
        )
    raw = tags.get(RAW_SNAPSHOT_TAG)
    return Champion(str(version), mv.run_id, tags[FEATURES_TAG], int(raw) if raw else None)


def window_start(window: str, now: datetime | None = None) -> datetime | None:
    """``None`` for ``since_last_check``; otherwise ``now`` (the run's end of window) minus ``Nh``/``Nd``."""
    match = re.fullmatch(r"(\d+)([hd])", window)
    if window == "since_last_check" or match is None:
        return None
    amount, unit = int(match.group(1)), match.group(2)
    return (now or datetime.now(UTC)) - (timedelta(hours=amount) if unit == "h" else timedelta(days=amount))


def last_checked(checks: Any) -> int | None:
    """The raw snapshot the newest non-backfill check covered, from ``drift_checks``."""
    if checks is None or transaction.head(checks) is None:
        return None
    frame = checks.scan(selected_fields=("checked_at", "raw_snapshot", "backfill")).to_pandas()
    frame = frame[~frame["backfill"].fillna(False).astype(bool)]
    if frame.empty:
        return None
    return int(frame.sort_values("checked_at").iloc[-1]["raw_snapshot"])


def checked_snapshots(checks: Any) -> list[int]:
    """The raw snapshots every check covered (backfills included), newest check first: where a backfill run's
    ``since_last_check`` window starts (the newest check that covered an ancestor of its own end)."""
    if checks is None or transaction.head(checks) is None:
        return []
    frame = checks.scan(selected_fields=("checked_at", "raw_snapshot")).to_pandas()
    return [int(v) for v in frame.sort_values("checked_at", ascending=False)["raw_snapshot"]]


def window_files(
    raw: Any,
    champion: Champion,
    checked: int | Sequence[int] | None,
    window: str,
    until: int | None = None,
    at: datetime | None = None,
) -> tuple[list[str], int]:
    """Paths of raw files in the current window (see the module docstring), and the raw snapshot it ends at.

    ``at`` ends the window in time (a run's data interval: a backfill run checks the past, not today): the window
    ends at the newest snapshot of ``main`` committed by then. ``checked``: the snapshot the last check covered, or
    candidates newest first (the first that is an ancestor of the window's end is used)."""
    head = raw.snapshot_by_id(until) if until is not None else transaction.head(raw)
    if head is not None and at is not None:
        bound = at.timestamp() * 1000
        head = next((s for s in transaction.ancestors(raw, head) if s.timestamp_ms <= bound), None)
    if head is None:
        return [], 0
    chain = transaction.ancestors(raw, head, stop_at=champion.raw_snapshot)
    ids = [s.snapshot_id for s in chain]
    start = window_start(window, at)
    candidates = [checked] if isinstance(checked, int) else list(checked or [])
    since = next((c for c in candidates if c in ids), None)
    if start is None and since is not None:
        chain = chain[: ids.index(since)]
    elif start is not None:
        chain = [s for s in chain if s.timestamp_ms >= start.timestamp() * 1000]
    live = {t.file.file_path for t in raw.scan(snapshot_id=head.snapshot_id).plan_files()}
    since = chain[-1].parent_snapshot_id if chain else None
    paths = [f.file_path for s in reversed(chain) if not transaction.rewrites_only_before(raw, s, since)
             for f in transaction.added_and_removed(raw, s.snapshot_id)[0]]  # fmt: skip
    return [p for p in paths if p in live], int(head.snapshot_id)
