"""Promotion and rollback through MLflow registry aliases, serialised by a registry lock.

``champion`` moves in one alias update (what consumers of ``models:/<name>@champion`` see). The two alias
updates are ordered so that a crash at any point retries into the right end state: ``previous`` is set to
the current champion *first*, then ``champion`` to the new version. A crash in between leaves ``previous``
equal to ``champion`` (the old one), and the retry, finding the champion not yet moved, sets both again.

A rollback names its target (``to``), or goes to ``previous`` unless ``previous`` is itself a version that was
rolled back from: running the same rollback twice never puts the bad model back.

Two promotions of the same model must not interleave, so both hold a lock: a registered model named
``<name>.promotion-lock``, whose creation the registry's unique-name constraint makes atomic across processes
and machines. The lock carries its holder's token; releasing deletes it only if the token is still ours. A lock
older than ``STALE_AFTER_S`` (its holder died) is taken over: re-read just before it is deleted, so a lock that a
live holder took meanwhile is left alone.
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


@contextmanager
def registry_lock(client: Any, name: str, owner: str, timeout_s: float = 120.0) -> Iterator[None]:
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
    try:
        yield
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


def promote(client: Any, name: str, version: str, *, by: str, require_approval: bool = False) -> dict[str, Any]:
    """Make ``version`` the champion if its evaluation blessed it (and a person approved it, when required);
    idempotent."""
    from mlops_ops.training.approval import require_approved

    with registry_lock(client, name, by):
        tags = client.get_model_version(name, version).tags
        if tags.get("mlops_ops.blessed") != "true":
            reasons = tags.get("mlops_ops.verdict") or "it was never evaluated"
            raise NotBlessedError(f"{name} version {version} is not blessed: {reasons}")
        if require_approval:
            require_approved(name, version, tags)
        current = alias_version(client, name, CHAMPION)
        if current == version:
            return {"model_name": name, "champion": version, "previous": alias_version(client, name, PREVIOUS),
                    "changed": False}  # fmt: skip
        if current is not None:
            client.set_registered_model_alias(name, PREVIOUS, current)  # first: a crash after it retries right
        client.set_registered_model_alias(name, CHAMPION, version)  # the switch consumers see
        now = datetime.now(UTC).isoformat()
        client.set_model_version_tag(name, version, "mlops_ops.promoted_by", by)
        client.set_model_version_tag(name, version, "mlops_ops.promoted_at", now)
        return {"model_name": name, "champion": version, "previous": current, "changed": True}


def rollback(client: Any, name: str, *, by: str, reason: str, to: str | None = None) -> dict[str, Any]:
    """Move ``champion`` to version ``to`` (default: ``previous``); ``previous`` records the version rolled back
    from. Idempotent: with ``to``, a champion already at ``to`` changes nothing; without it, a ``previous`` that was
    itself rolled back from is refused (a second run would put it back)."""
    with registry_lock(client, name, by):
        current, previous = alias_version(client, name, CHAMPION), alias_version(client, name, PREVIOUS)
        target = to or previous
        if target is None:
            raise LookupError(f"{name} has no '{PREVIOUS}' version to roll back to (champion: {current})")
        if target == current:
            return {"model_name": name, "champion": current, "previous": previous, "changed": False}
        if to is None and client.get_model_version(name, target).tags.get("mlops_ops.rolled_back"):
            raise LookupError(
                f"{name}: '{PREVIOUS}' is version {target}, which was rolled back from before; name the version to "
                f"roll back to (--to VERSION) instead of rolling back again"
            )
        if current is not None:
            client.set_registered_model_alias(name, PREVIOUS, current)
        client.set_registered_model_alias(name, CHAMPION, target)
        if current is not None:
            client.set_model_version_tag(name, current, "mlops_ops.rolled_back",
                                         f"{datetime.now(UTC).isoformat()} by {by}: {reason}")  # fmt: skip
        return {"model_name": name, "champion": target, "previous": current, "changed": True}
