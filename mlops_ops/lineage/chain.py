"""The chain behind a model version: source offsets/objects -> raw batches (gate verdicts) -> features snapshot ->
training run -> version (evaluation, approval, aliases). Read from what the pipeline recorded: the version's tags
in MLflow, the snapshot summaries of the pipeline's Iceberg tables and ``quality_checks``. ``mlops-ops lineage``
prints it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_ops.lake import transaction
from mlops_ops.lake.history import rows
from mlops_ops.lake.tables import PipelineTables, parse_snapshot_ref
from mlops_ops.monitoring.window import FEATURES_TAG, RAW_SNAPSHOT_TAG


@dataclass
class Batch:
    batch_id: str
    source: str
    snapshot_id: int
    rows: int
    kafka_offsets: dict[str, list[int]] = field(default_factory=dict)  # "topic/partition": [first, next]
    s3_objects: list[dict[str, str]] = field(default_factory=list)  # [{key, etag}]
    gate: dict[str, Any] | None = None


@dataclass
class Chain:
    model_name: str
    version: str
    run_id: str | None
    aliases: list[str]
    tags: dict[str, str]
    features: str | None
    raw_snapshot: int | None
    batches: list[Batch]
    older_batches: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_model_ref(text: str) -> tuple[str, str]:
    name, sep, version = text.rpartition("@")
    if not sep or not name or not version.isdigit():
        raise ValueError(f"'{text}' is not MODEL@VERSION (e.g. churn@3)")
    return name, version


def chain_of(client: Any, catalog: Any, model_name: str, version: str, limit: int = 50) -> Chain:
    """Everything recorded behind ``model_name`` version ``version`` (at most ``limit`` raw batches, newest first)."""
    mv = client.get_model_version(model_name, version)
    tags = dict(mv.tags or {})
    aliases = sorted(getattr(mv, "aliases", []) or [])
    features, raw_tag = tags.get(FEATURES_TAG), tags.get(RAW_SNAPSHOT_TAG)
    raw_snapshot = int(raw_tag) if raw_tag else None
    batches: list[Batch] = []
    older = 0
    if features:
        ident, _ = parse_snapshot_ref(features)
        pipeline = ident.split(".", 1)[0]
        tables = PipelineTables(catalog, pipeline)
        raw = tables.load("raw")
        head = raw.snapshot_by_id(raw_snapshot) if raw is not None and raw_snapshot is not None else None
        if head is not None:
            gates = {r["batch_id"]: r for r in rows(tables.load("quality_checks"))}
            published = [s for s in transaction.ancestors(raw, head) if _holds_rows(s)]
            older = max(0, len(published) - limit)
            batches = [_batch(raw, s, gates) for s in published[:limit]]
    return Chain(model_name, str(version), mv.run_id, aliases, tags, features, raw_snapshot, batches, older)


def _holds_rows(snapshot: Any) -> bool:
    """A batch's commit on ``main`` (not a quarantine decision or a compaction, which add no new rows)."""
    summary = transaction.summary_of(snapshot)
    return bool(summary.get(transaction.BATCH_KEY)) and summary.get(transaction.DECISION_KEY) not in (
        "quarantined",
        "compaction",
    )


def _batch(raw: Any, snapshot: Any, gates: dict[str, dict[str, Any]]) -> Batch:
    summary = transaction.summary_of(snapshot)
    batch_id, source = summary.get("mlops.batch", ""), summary.get("mlops.source", "")
    batch = Batch(batch_id, source, int(snapshot.snapshot_id), int(summary.get("mlops.rows", "0") or 0))
    if source == "kafka":
        batch.kafka_offsets = json.loads(summary.get("mlops.kafka.range", "{}"))
    elif source == "s3":
        from mlops_ops.lake.s3_ingest import read_state

        state = read_state(raw.io, summary.get(transaction.CURSOR_PREFIX + "s3", "")).get("objects", {})
        batch.s3_objects = [{"key": key, "etag": str(o.get("etag"))} for key, o in sorted(state.items())
                            if o.get("batch") == batch_id]  # fmt: skip
    gate = gates.get(batch_id)
    if gate is not None:
        batch.gate = {k: gate[k] for k in ("suite", "passed", "evaluated", "failed", "warnings", "docs_path", "run_id")}
    return batch


def render(chain: Chain) -> str:
    """The chain as text, from the version back to the sources."""
    t = chain.tags
    lines = [f"{chain.model_name} v{chain.version}" + (f"  aliases: {', '.join(chain.aliases)}" if chain.aliases
                                                         else "")]  # fmt: skip
    if t.get("mlops_ops.approval"):
        comment = f' "{t["mlops_ops.approval_comment"]}"' if t.get("mlops_ops.approval_comment") else ""
        lines.append(f"  approval: {t['mlops_ops.approval']} by {t.get('mlops_ops.approval_by', '?')} at "
                     f"{t.get('mlops_ops.approval_at', '?')}{comment}")  # fmt: skip
    if t.get("mlops_ops.blessed"):
        lines.append(f"  evaluation: {'blessed' if t['mlops_ops.blessed'] == 'true' else 'not blessed'} "
                     f"({t.get('mlops_ops.verdict', '')})")  # fmt: skip
    if t.get("mlops_ops.promoted_by"):
        lines.append(f"  promoted by {t['mlops_ops.promoted_by']} at {t.get('mlops_ops.promoted_at', '?')}")
    lines.append(f"  training run: MLflow run {chain.run_id}" + (f" (Airflow run {t['airflow.run_id']})"
                                                                  if t.get("airflow.run_id") else ""))  # fmt: skip
    lines.append(f"  features: {chain.features or 'unknown (no lineage tag)'}")
    if chain.raw_snapshot is not None and chain.features:
        lines.append(f"  built from raw snapshot {chain.raw_snapshot}, which holds {len(chain.batches)} batch(es)"
                     + (f" (and {chain.older_batches} older)" if chain.older_batches else "") + ":")  # fmt: skip
    for b in chain.batches:
        lines.append(f"    {b.batch_id}  snapshot {b.snapshot_id}  {b.rows} rows  from {b.source}")
        for tp, (first, following) in sorted(b.kafka_offsets.items()):
            lines.append(f"      kafka {tp} offsets {first}..{following - 1}")
        for o in b.s3_objects[:20]:
            lines.append(f"      {o['key']} etag {o['etag']}")
        if b.gate is not None:
            lines.append(f"      gate {b.gate['suite']}: {'passed' if b.gate['passed'] else 'FAILED'} "
                         f"({b.gate['evaluated']} expectations, {b.gate['failed']} failed, {b.gate['warnings']} "
                         f"warnings) Data Docs {b.gate['docs_path'] or '-'}")  # fmt: skip
    return "\n".join(lines)
