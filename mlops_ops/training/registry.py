"""Promotion and rollback through MLflow registry aliases, serialised by a registry lock.

``champion`` moves in one alias update (what consumers of ``models:/<name>@champion`` see). Every alias change
is written ahead as an intent (the registered model's tag ``mlops_ops.alias_intent``: the new champion, the new
``previous``, the version tags to set), then carried out step by step, each step idempotent, and the intent
removed. A crash at any point leaves the intent; the next promotion or rollback of the model, its own retry
included, carries it out first: a rollback that died half-way is finished, never turned into a roll forward (N6).

A promotion needs a blessed version, not rolled back (a cleared old promote task does not put a rolled-back model
back), and with approval on, an approval given against the version that is champion now (N7). A rollback names
its target (``to``), or goes to ``previous`` unless ``previous`` is itself a version that was rolled back from:
running the same rollback twice never puts the bad model back; its target must be blessed.

Two promotions of the same model must not interleave, so both hold a lock: a registered model named
``<name>.promotion-lock``, whose creation the registry's unique-name constraint makes atomic across processes
and machines. The lock carries its holder's token; releasing deletes it only if the token is still ours. A lock
older than ``STALE_AFTER_S`` (its holder died) is taken over: re-read just before it is deleted, so a lock that a
live holder took meanwhile is left alone. MLflow has no conditional delete, so two waiters that both judged the same
lock dead can still both create one in turn; each holder checks that the lock carries its token right before it
writes the intent, so only one of them writes (the other raises ``LockLostError`` and is retried).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from mlops_ops.training.evaluation import CHAMPION

PREVIOUS = "previous"
LOCK_SUFFIX = ".promotion-lock"
STALE_AFTER_S = 600.0


class NotBlessedError(Exception):
    """The version's evaluation did not bless it (or it was never evaluated)."""


def alias_version(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


class LockLostError(RuntimeError):
    """Another process took the registry lock over (it judged ours stale): nothing was written, retry."""


@contextmanager
def registry_lock(client: Any, name: str, owner: str, timeout_s: float = 120.0) -> Iterator[Any]:
    """Hold ``<name>.promotion-lock``; yields a check to call right before writing: it raises
    :class:`LockLostError` when the lock no longer carries our token (two waiters that both judged a stale lock
    dead can both create one in turn: only the one whose token the lock carries writes)."""
    from mlflow.exceptions import MlflowException

    lock = name + LOCK_SUFFIX
    token = uuid.uuid4().hex
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.create_registered_model(lock, tags={"owner": owner, "token": token, "since": str(time.time())},
                                           description=f"held while {owner} changes the aliases of {name}")  # fmt: skip
            break
        except MlflowException as err:
            code = getattr(err, "error_code", "")
            if code == "RESOURCE_DOES_NOT_EXIST":
                # MLflow's store, on the unique-name conflict, re-reads the existing model to word its error; a
                # holder that released the lock in between makes that read fail: the lock is free, try again.
                continue
            if code != "RESOURCE_ALREADY_EXISTS":
                raise
            held = _lock_tags(client, lock)
            if held is None:
                continue  # released between our two calls
            if time.time() - float(held.get("since", "0")) > STALE_AFTER_S:
                _delete_if_token(client, lock, held.get("token"))  # a dead holder's lock: take it over
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"{lock} is held by {held.get('owner')}; gave up after {timeout_s:.0f} s") from err
            time.sleep(0.2)

    def still_held() -> None:
        held = _lock_tags(client, lock)
        if held is None or held.get("token") != token:
            raise LockLostError(f"{lock} was taken over by {held.get('owner') if held else 'nobody'} while {owner} "
                                "held it: nothing was written, retry")  # fmt: skip

    try:
        yield still_held
    finally:
        _delete_if_token(client, lock, token)


def _lock_tags(client: Any, lock: str) -> dict[str, str] | None:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_registered_model(lock).tags)
    except MlflowException:
        return None


def _delete_if_token(client: Any, lock: str, token: str | None) -> None:
    """Delete the lock only if it still carries ``token`` (never another holder's lock)."""
    from mlflow.exceptions import MlflowException

    held = _lock_tags(client, lock)
    if held is None or token is None or held.get("token") != token:
        return
    try:
        client.delete_registered_model(lock)
    except MlflowException:
        pass


INTENT_TAG = "mlops_ops.alias_intent"  # registered-model tag: the alias change in progress (JSON)
ROLLED_BACK_TAG = "mlops_ops.rolled_back"


def _write_ahead(client: Any, name: str, intent: dict[str, Any]) -> dict[str, Any]:
    """Record the whole alias change on the registered model, then carry it out: a crash anywhere leaves the
    intent, and the next promotion or rollback of the model (its retry included) finishes it first (N6)."""
    import json

    client.set_registered_model_tag(name, INTENT_TAG, json.dumps(intent, sort_keys=True))
    return _carry_out(client, name, intent)


def _carry_out(client: Any, name: str, intent: dict[str, Any]) -> dict[str, Any]:
    """Each step is idempotent: setting an alias or tag to the value it has changes nothing."""
    if intent.get("previous") is not None:
        client.set_registered_model_alias(name, PREVIOUS, intent["previous"])
    client.set_registered_model_alias(name, CHAMPION, intent["champion"])  # the switch consumers see
    for version, tags in intent.get("version_tags", {}).items():
        for key, value in tags.items():
            client.set_model_version_tag(name, version, key, value)
    client.delete_registered_model_tag(name, INTENT_TAG)
    return intent


def _finish_pending(client: Any, name: str) -> dict[str, Any] | None:
    """The intent a crashed promotion or rollback left, carried out now (``None`` when there is none)."""
    import json

    from mlflow.exceptions import MlflowException

    try:
        text = (client.get_registered_model(name).tags or {}).get(INTENT_TAG)
    except MlflowException:
        return None
    return _carry_out(client, name, json.loads(text)) if text else None


def _result(name: str, intent: dict[str, Any], changed: bool) -> dict[str, Any]:
    return {"model_name": name, "champion": intent["champion"], "previous": intent.get("previous"), "changed": changed}


def promote(client: Any, name: str, version: str, *, by: str, require_approval: bool = False) -> dict[str, Any]:
    """Make ``version`` the champion if its evaluation blessed it (and a person approved it against the version
    that is champion now, when required) and nobody rolled it back; idempotent and crash-safe (a write-ahead
    intent on the registered model)."""
    from mlops_ops.training.approval import require_approved

    with registry_lock(client, name, by) as still_held:
        still_held()
        done = _finish_pending(client, name)
        if done is not None and done["op"] == "promote" and done["champion"] == version:
            return _result(name, done, True)  # the retry of a promotion that crashed half-way
        tags = client.get_model_version(name, version).tags
        current = alias_version(client, name, CHAMPION)
        if current == version:
            return {"model_name": name, "champion": version, "previous": alias_version(client, name, PREVIOUS),
                    "changed": False}  # fmt: skip
        if tags.get("mlops_ops.blessed") != "true":
            reasons = tags.get("mlops_ops.verdict") or "it was never evaluated"
            raise NotBlessedError(f"{name} version {version} is not blessed: {reasons}")
        if tags.get(ROLLED_BACK_TAG):
            raise NotBlessedError(
                f"{name} version {version} was rolled back ({tags[ROLLED_BACK_TAG]}): a promotion (a cleared old "
                f"task, a retry) does not put it back; choose it by hand with `mlops-ops model rollback {name} --to "
                f"{version}` if that is what you want"
            )
        if require_approval:
            require_approved(name, version, tags, current)
        now = datetime.now(UTC).isoformat()
        intent = {"op": "promote", "champion": version, "previous": current, "by": by, "at": now,
                  "version_tags": {version: {"mlops_ops.promoted_by": by, "mlops_ops.promoted_at": now}}}  # fmt: skip
        still_held()
        return _result(name, _write_ahead(client, name, intent), True)


def rollback(client: Any, name: str, *, by: str, reason: str, to: str | None = None) -> dict[str, Any]:
    """Move ``champion`` to version ``to`` (default: ``previous``); ``previous`` records the version rolled back
    from. Idempotent and crash-safe: with ``to``, a champion already at ``to`` changes nothing; without it, a
    ``previous`` that was itself rolled back from is refused (a second run would put it back); a rollback that
    crashed half-way is finished by its retry (a write-ahead intent), never turned into a roll forward."""
    with registry_lock(client, name, by) as still_held:
        still_held()
        done = _finish_pending(client, name)
        if done is not None and done["op"] == "rollback" and (to is None or done["champion"] == to):
            return _result(name, done, True)
        current, previous = alias_version(client, name, CHAMPION), alias_version(client, name, PREVIOUS)
        target = to or previous
        if target is None:
            raise LookupError(f"{name} has no '{PREVIOUS}' version to roll back to (champion: {current})")
        if target == current:
            return {"model_name": name, "champion": current, "previous": previous, "changed": False}
        target_tags = client.get_model_version(name, target).tags
        if to is None and target_tags.get(ROLLED_BACK_TAG):
            raise LookupError(
                f"{name}: '{PREVIOUS}' is version {target}, which was rolled back from before; name the version to "
                f"roll back to (--to VERSION) instead of rolling back again"
            )
        if target_tags.get("mlops_ops.blessed") != "true":
            raise NotBlessedError(f"{name} version {target} is not blessed: the champion is always a blessed version")
        note = f"{datetime.now(UTC).isoformat()} by {by}: {reason}"
        version_tags: dict[str, dict[str, str]] = {str(current): {ROLLED_BACK_TAG: note}} if current else {}
        if target_tags.get(ROLLED_BACK_TAG):  # chosen by hand (--to): no longer a rolled-back version
            version_tags[target] = {ROLLED_BACK_TAG: ""}
        intent = {"op": "rollback", "champion": target, "previous": current, "by": by, "version_tags": version_tags}
        still_held()
        return _result(name, _write_ahead(client, name, intent), True)
