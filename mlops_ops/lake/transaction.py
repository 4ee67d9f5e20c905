"""The one commit protocol of the lake: write, audit, publish; every writer of every table goes through here.

A source's batch is **staged** on the audit branch ``audit_<source>`` of the table: one Iceberg commit that
creates the branch from ``main`` and appends the batch's data files to it. Readers of ``main`` don't see it.
A quality gate validates exactly the files that snapshot added; then the batch is **published** (``main``
fast-forwards to the audited snapshot, or the same files are re-committed on top of a ``main`` that another
source moved meanwhile) or **discarded** (``main`` records the new position without the rows; the caller has
copied them to the quarantine table first). Branch removal is part of the same commit, so a crash leaves the
batch either staged or decided, never half.

**Positions live in the snapshot summary.** Every snapshot of ``main`` carries each source's cursor
(``mlops.cursor.<source>``: Kafka offsets with the cluster id; for S3 the URI of an immutable state file of
keys and ETags). A commit succeeds only if ``main`` is still at the snapshot whose cursor the batch started
from, checked by the catalog inside the commit (``AssertRefSnapshotId``; pyiceberg's own commit retries,
which would re-apply the commit on top of the winner, are off for our tables). The loser raises
:class:`~mlops_ops.exceptions.LakeConflictError` with nothing visible; its retry starts where the winner ended.

**One writer per source.** A source whose batches a quality gate decides is marked on the table (the property
``mlops.gated-sources``) by the first gated run; from then on a run that would publish without the gate is refused
before it reads anything (:class:`~mlops_ops.exceptions.LakeWriterError`), and :func:`publish` of such a batch
needs ``audited=True`` (only the gate passes it). A person unmarks a source by removing it from the property.

**Every ref a commit depends on is asserted in the commit.** pyiceberg keeps one ``AssertRefSnapshotId`` per
transaction (the first one staged); :func:`_commit` adds the others the decision depends on (``main`` where a
batch starts, the audit branch it decides), so the catalog refuses a commit whose view went stale between the
checks in Python and the commit itself (N8).

Derived tables (dead letters, quarantine, features, drift checks) are appended with
:func:`append_once`: idempotent by batch id, so replaying a decision after a crash adds nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from mlops_ops.exceptions import LakeConflictError, LakeWriterError

log = logging.getLogger(__name__)

MAIN = "main"
CURSOR_PREFIX = "mlops.cursor."
BATCH_KEY = "mlops.batch"
SOURCE_KEY = "mlops.source"
START_KEY = "mlops.start-cursor"
DECISION_KEY = "mlops.decision"  # quarantined | released | compaction
COMPACTED_BEFORE_KEY = "mlops.compacted-before"
GATED_PROPERTY = "mlops.gated-sources"  # table property: comma-separated sources a quality gate decides


def audit_branch(source: str) -> str:
    return f"audit_{source}"


@dataclass(frozen=True)
class StagedBatch:
    """A batch written to an audit branch and not yet decided (small: goes through XCom)."""

    table: str
    source: str
    batch_id: str
    snapshot_id: int
    parent_id: int | None
    summary: dict[str, str]

    @property
    def start_cursor(self) -> str:
        return self.summary.get(START_KEY, "")

    @property
    def end_cursor(self) -> str:
        return self.summary.get(CURSOR_PREFIX + self.source, "")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def head(table: Any, ref: str = MAIN) -> Any:
    """The snapshot at the head of ``ref``, or ``None``."""
    return table.snapshot_by_name(ref)


def summary_of(snapshot: Any) -> dict[str, str]:
    if snapshot is None or snapshot.summary is None:
        return {}
    return {str(k): str(v) for k, v in snapshot.summary.additional_properties.items()}


def cursor(snapshot: Any, source: str) -> str:
    """A source's committed position in a snapshot of ``main`` ("" before its first batch)."""
    return summary_of(snapshot).get(CURSOR_PREFIX + source, "")


def carried_cursors(snapshot: Any) -> dict[str, str]:
    return {k: v for k, v in summary_of(snapshot).items() if k.startswith(CURSOR_PREFIX)}


def _table_name(table: Any) -> str:
    return ".".join(table.name())


def pending(table: Any, source: str) -> StagedBatch | None:
    """The batch staged for ``source`` and not yet decided, if any."""
    snap = head(table, audit_branch(source))
    if snap is None:
        return None
    summary = summary_of(snap)
    return StagedBatch(
        _table_name(table), source, summary.get(BATCH_KEY, ""), snap.snapshot_id, snap.parent_snapshot_id, summary
    )


def _snapshot(tx: Any, summary: Mapping[str, str], branch: str, removed: list[Any], added: list[Any]) -> None:
    """Stage one snapshot on ``branch`` in ``tx``: an append, or an overwrite when files are removed."""
    producer = tx.update_snapshot(snapshot_properties=dict(summary), branch=branch)
    with producer.overwrite() if removed else producer.fast_append() as update:
        for entry in removed:
            update.delete_data_file(entry)
        for entry in added:
            update.append_data_file(entry)


def gated_sources(table: Any) -> set[str]:
    return {s for s in str(table.properties.get(GATED_PROPERTY, "")).split(",") if s}


def claim(table: Any, source: str, *, gated: bool) -> Any:
    """Enforce one writer per source: a gated run marks the source gated (once); a run that publishes without the
    gate is refused on a gated source. Returns the table (refreshed when it was marked)."""
    marked = gated_sources(table)
    if gated and source not in marked:
        from pyiceberg.exceptions import CommitFailedException

        for _ in range(5):  # a property commit that lost to another writer's commit is simply tried again
            try:
                with table.transaction() as tx:
                    tx.set_properties(**{GATED_PROPERTY: ",".join(sorted(gated_sources(table) | {source}))})
                break
            except CommitFailedException:
                table = table.refresh()
        else:
            raise LakeConflictError(f"{_table_name(table)} kept changing while {source} was marked gated; retry")
        log.info("%s: source %s is decided by a quality gate from now on", _table_name(table), source)
        return table.refresh()
    if not gated and source in marked:
        raise LakeWriterError(
            f"{_table_name(table)}: its {source} batches are decided by a quality gate (table property "
            f"{GATED_PROPERTY}={','.join(sorted(marked))}); a writer that publishes without the gate would put "
            "unaudited rows on main, so it is refused. Stage with publish=False and let the pipeline's gate decide, "
            f"or write another table; remove '{source}' from the property only if the pipeline has no gate any more"
        )
    return table


def begin(table: Any, source: str, *, gated: bool = False) -> tuple[StagedBatch | None, str]:
    """Where a source's run starts: a batch still staged for it (to hand on to its gate, reading nothing new), or
    ``None`` and the position committed on ``main``. ``gated``: the run's batch is decided by a quality gate (see
    :func:`claim`)."""
    table = claim(table, source, gated=gated)
    staged = pending(table, source)
    if staged is not None:
        log.warning("batch %s is staged and not yet decided: handing it on, reading nothing new", staged.batch_id)
        return staged, staged.start_cursor
    return None, cursor(head(table), source)


def _commit(tx: Any, what: str, refs: Mapping[str, int | None] | None = None) -> None:
    """Commit ``tx``; ``refs`` (ref name -> the snapshot it must still point at, ``None``: must not exist) are
    asserted by the catalog in the same commit, besides the one assertion pyiceberg keeps."""
    from pyiceberg.exceptions import CommitFailedException
    from pyiceberg.table.update import AssertRefSnapshotId

    asserted = {r.ref for r in tx._requirements if isinstance(r, AssertRefSnapshotId)}
    extra = tuple(AssertRefSnapshotId(ref=ref, snapshot_id=sid) for ref, sid in (refs or {}).items()  # type: ignore[call-arg]
                  if ref not in asserted)  # fmt: skip
    tx._requirements += extra  # pyiceberg dedupes requirements by type; ours name other refs
    try:
        for requirement in extra:
            requirement.validate(tx._table.metadata)  # stale already: fail before the catalog is asked
        tx.commit_transaction()
    except CommitFailedException as err:
        raise LakeConflictError(
            f"{what}: another writer committed first ({err}); nothing of this run is "
            "visible, a retry starts from where the other writer ended"
        ) from err


def data_files(table: Any, paths: Iterable[str]) -> list[Any]:
    """Iceberg data-file entries (with column statistics) for Parquet files already written."""
    from pyiceberg.io.pyarrow import parquet_file_to_data_file

    return [parquet_file_to_data_file(table.io, table.metadata, p) for p in paths]


def stage(
    table: Any,
    *,
    source: str,
    batch_id: str,
    start_cursor: str,
    end_cursor: str,
    files: list[str],
    replaced: list[Any] | None = None,
    properties: Mapping[str, str] | None = None,
) -> StagedBatch:
    """Commit a batch to ``audit_<source>``; fails if a batch is already staged or ``main`` moved on."""
    table = table.refresh()
    existing = pending(table, source)
    if existing is not None:
        raise LakeConflictError(
            f"batch {existing.batch_id} of {_table_name(table)} is staged on "
            f"{audit_branch(source)} and not yet published: it is decided first"
        )
    main = head(table)
    if cursor(main, source) != start_cursor:
        raise LakeConflictError(
            f"{_table_name(table)} moved: {source} position is now {cursor(main, source)[:200]!r}, this run "
            f"started from {start_cursor[:200]!r}; a retry reads from the new position"
        )
    summary = {
        **carried_cursors(main),
        **(properties or {}),
        CURSOR_PREFIX + source: end_cursor,
        SOURCE_KEY: source,
        BATCH_KEY: batch_id,
        START_KEY: start_cursor,
    }
    entries = data_files(table, files)
    branch = audit_branch(source)
    tx = table.transaction()
    if main is not None:
        from pyiceberg.table.update.snapshot import ManageSnapshots

        ManageSnapshots(tx).create_branch(main.snapshot_id, branch).commit()  # asserts: branch absent
    _snapshot(tx, summary, branch, list(replaced or []), entries)
    _commit(tx, f"staging batch {batch_id} in {_table_name(table)}",
            {MAIN: main.snapshot_id if main is not None else None, branch: None})  # fmt: skip
    staged = pending(table.refresh(), source)
    assert staged is not None and staged.batch_id == batch_id
    log.info("staged batch %s (%d file(s)) on %s@%s", batch_id, len(entries), _table_name(table), branch)
    return staged


def added_and_removed(table: Any, snapshot_id: int) -> tuple[list[Any], list[Any]]:
    """Data files a snapshot added and removed (relative to its parent)."""
    from pyiceberg.manifest import ManifestEntryStatus

    snap = table.snapshot_by_id(snapshot_id)
    added: list[Any] = []
    removed: list[Any] = []
    for manifest in snap.manifests(table.io):
        if manifest.added_snapshot_id != snapshot_id:
            continue
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
            if entry.snapshot_id != snapshot_id:
                continue
            if entry.status == ManifestEntryStatus.ADDED:
                added.append(entry.data_file)
            elif entry.status == ManifestEntryStatus.DELETED:
                removed.append(entry.data_file)
    return added, removed


def batch_files(table: Any, staged: StagedBatch) -> list[str]:
    """Paths of the data files a staged batch added: exactly what an audit validates."""
    return [f.file_path for f in added_and_removed(table, staged.snapshot_id)[0]]


def publish(table: Any, staged: StagedBatch) -> int:
    """Make a staged batch visible on ``main``; idempotent (a replay after a crash returns the published id)."""
    table = table.refresh()
    current = pending(table, staged.source)
    main = head(table)
    if current is None or current.snapshot_id != staged.snapshot_id:
        return _already_decided(table, staged, main)
    if cursor(main, staged.source) != staged.start_cursor:
        raise LakeConflictError(
            f"{_table_name(table)}: {staged.source} position moved since batch "
            f"{staged.batch_id} was staged; it cannot be published on top"
        )
    from pyiceberg.table.update.snapshot import ManageSnapshots

    tx = table.transaction()
    main_id = main.snapshot_id if main is not None else None
    if main_id == staged.parent_id:
        ManageSnapshots(tx).set_current_snapshot(snapshot_id=staged.snapshot_id).remove_branch(
            audit_branch(staged.source)
        ).commit()
        _commit(
            tx, f"publishing batch {staged.batch_id}", {MAIN: main_id, audit_branch(staged.source): staged.snapshot_id}
        )
        log.info("published batch %s: %s main -> %s", staged.batch_id, _table_name(table), staged.snapshot_id)
        return staged.snapshot_id
    # main moved (another source published meanwhile): the same files, committed on top of it
    added, removed = added_and_removed(table, staged.snapshot_id)
    own = {k: v for k, v in staged.summary.items() if k.startswith("mlops.")}
    summary = {**own, **carried_cursors(main), CURSOR_PREFIX + staged.source: staged.end_cursor}
    _snapshot(tx, summary, MAIN, removed, added)
    ManageSnapshots(tx).remove_branch(audit_branch(staged.source)).commit()
    _commit(tx, f"publishing batch {staged.batch_id}", {MAIN: main_id, audit_branch(staged.source): staged.snapshot_id})
    new_head = head(table.refresh())
    log.info("published batch %s onto %s main: %s", staged.batch_id, _table_name(table), new_head.snapshot_id)
    return int(new_head.snapshot_id)


def discard(table: Any, staged: StagedBatch, properties: Mapping[str, str]) -> int:
    """Decide a staged batch without publishing its rows: ``main`` records the source's new position only."""
    table = table.refresh()
    current = pending(table, staged.source)
    main = head(table)
    if current is None or current.snapshot_id != staged.snapshot_id:
        return _already_decided(table, staged, main)
    summary = {
        **carried_cursors(main),
        **properties,
        CURSOR_PREFIX + staged.source: staged.end_cursor,
        SOURCE_KEY: staged.source,
        BATCH_KEY: staged.batch_id,
        START_KEY: staged.start_cursor,
    }
    return _cursor_commit(table, summary, f"deciding batch {staged.batch_id}", drop_branch=staged)


def _cursor_commit(table: Any, summary: Mapping[str, str], what: str, drop_branch: StagedBatch | None = None) -> int:
    """A snapshot on ``main`` that adds no rows, only summary properties (a position, a decision)."""
    from pyiceberg.table.update.snapshot import ManageSnapshots

    main = head(table)
    refs: dict[str, int | None] = {MAIN: main.snapshot_id if main is not None else None}
    tx = table.transaction()
    with tx.update_snapshot(snapshot_properties=dict(summary), branch=MAIN).fast_append():
        pass
    if drop_branch is not None:
        ManageSnapshots(tx).remove_branch(audit_branch(drop_branch.source)).commit()
        refs[audit_branch(drop_branch.source)] = drop_branch.snapshot_id
    _commit(tx, what, refs)
    return int(head(table.refresh()).snapshot_id)


def _already_decided(table: Any, staged: StagedBatch, main: Any) -> int:
    for snap in ancestors(table, main):
        if summary_of(snap).get(BATCH_KEY) == staged.batch_id and summary_of(snap).get(SOURCE_KEY) == staged.source:
            return int(snap.snapshot_id)
    raise LakeConflictError(
        f"batch {staged.batch_id} is no longer staged on {_table_name(table)} and main does "
        "not hold it: another run decided or replaced it"
    )


def ancestors(table: Any, snapshot: Any, stop_at: int | None = None) -> list[Any]:
    """``snapshot`` and its ancestors, newest first, down to (excluding) ``stop_at``."""
    out = []
    while snapshot is not None and snapshot.snapshot_id != stop_at:
        out.append(snapshot)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return out


def committed_batch(table: Any, batch_id: str) -> Any:
    """The snapshot of ``table`` (any retained one) that committed ``batch_id``, or ``None``."""
    for snap in table.snapshots():
        if summary_of(snap).get(BATCH_KEY) == batch_id:
            return snap
    return None


def append_once(table: Any, batch_id: str, files: list[str], properties: Mapping[str, str]) -> int:
    """Append data files to a derived table once per ``batch_id`` (a replay finds the earlier commit)."""
    table = table.refresh()
    done = committed_batch(table, batch_id)
    if done is not None:
        return int(done.snapshot_id)
    return _write(table, head(table), batch_id, files, properties, [])


def commit_files(
    table: Any,
    batch_id: str,
    files: list[str],
    properties: Mapping[str, str],
    *,
    expected_head: int | None,
    replace: bool,
) -> int:
    """Append ``files`` to ``main`` (or replace every row with them) if ``main`` is still at ``expected_head``."""
    table = _at_head(table, expected_head)
    main = head(table)
    removed = [task.file for task in table.scan().plan_files()] if replace and main is not None else []
    return _write(table, main, batch_id, files, properties, removed)


def replace_files(
    table: Any,
    batch_id: str,
    *,
    removed: list[Any],
    files: list[str],
    properties: Mapping[str, str],
    expected_head: int | None,
) -> int:
    """Remove some data files and add others in one commit (a compaction), if ``main`` is at ``expected_head``."""
    table = _at_head(table, expected_head)
    return _write(table, head(table), batch_id, files, properties, removed)


def _at_head(table: Any, expected_head: int | None) -> Any:
    table = table.refresh()
    main = head(table)
    if (main.snapshot_id if main is not None else None) != expected_head:
        raise LakeConflictError(f"{_table_name(table)} moved since this run started; a retry starts again")
    return table


def _write(
    table: Any, main: Any, batch_id: str, files: list[str], properties: Mapping[str, str], removed: list[Any]
) -> int:
    entries = data_files(table, files)
    tx = table.transaction()
    _snapshot(tx, {**carried_cursors(main), **properties, BATCH_KEY: batch_id}, MAIN, removed, entries)
    _commit(tx, f"committing batch {batch_id} to {_table_name(table)}")
    return int(head(table.refresh()).snapshot_id)


def rewrites_only_before(table: Any, snapshot: Any, since: int | None) -> bool:
    """Whether ``snapshot`` is a compaction that touched only files committed at or before ``since``: it
    changed no row a reader starting after ``since`` reads."""
    summary = summary_of(snapshot)
    if summary.get(DECISION_KEY) != "compaction" or since is None:
        return False
    bound = int(summary.get(COMPACTED_BEFORE_KEY, "0"))
    return bound in {s.snapshot_id for s in ancestors(table, table.snapshot_by_id(since))}


def commit_properties(table: Any, properties: Mapping[str, str]) -> int:
    """A row-less snapshot on ``main`` carrying ``properties`` (and every cursor)."""
    table = table.refresh()
    return _cursor_commit(table, {**carried_cursors(head(table)), **properties}, "recording a lake event")


def json_value(value: Any) -> str:
    """Compact, deterministic JSON for a summary property."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
