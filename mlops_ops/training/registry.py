"""Promotion and rollback through MLflow registry aliases, serialised by a registry lock.

``champion`` moves in one alias update (what consumers of ``models:/<name>@champion``
see); ``previous`` then records the version it replaced. Two promotions of the same model
must not interleave their two updates, so both hold a lock: a registered model named
``<name>.promotion-lock``, whose creation the registry's unique-name constraint makes atomic
across processes and machines. A lock older than ``STALE_AFTER_S`` (its holder died) is broken.
"""

from __future__ import annotations

import time
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
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.create_registered_model(lock, tags={"owner": owner, "since": str(time.time())},
                                           description=f"held while {owner} changes the aliases of {name}")  # fmt: skip
            break
        except MlflowException as err:
            if getattr(err, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
            try:
                since = float(client.get_registered_model(lock).tags.get("since", "0"))
            except MlflowException:
                continue  # released between our two calls
            if time.time() - since > STALE_AFTER_S:
                _delete(client, lock)
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"{lock} is held by another promotion; gave up after {timeout_s:.0f} s") from err
            time.sleep(0.2)
    try:
        yield
    finally:
        _delete(client, lock)


def _delete(client: Any, lock: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(lock)
    except MlflowException:
        pass


def promote(client: Any, name: str, version: str, *, by: str) -> dict[str, Any]:
    """Make ``version`` the champion if its evaluation blessed it; idempotent."""
    with registry_lock(client, name, by):
        tags = client.get_model_version(name, version).tags
        if tags.get("mlops_ops.blessed") != "true":
            reasons = tags.get("mlops_ops.verdict") or "it was never evaluated"
            raise NotBlessedError(f"{name} version {version} is not blessed: {reasons}")
        current = alias_version(client, name, CHAMPION)
        if current == version:
            return {"model_name": name, "champion": version, "previous": alias_version(client, name, PREVIOUS),
                    "changed": False}  # fmt: skip
        client.set_registered_model_alias(name, CHAMPION, version)  # the switch consumers see
        if current is not None:
            client.set_registered_model_alias(name, PREVIOUS, current)
        now = datetime.now(UTC).isoformat()
        client.set_model_version_tag(name, version, "mlops_ops.promoted_by", by)
        client.set_model_version_tag(name, version, "mlops_ops.promoted_at", now)
        return {"model_name": name, "champion": version, "previous": current, "changed": True}


def rollback(client: Any, name: str, *, by: str, reason: str) -> dict[str, Any]:
    """Move ``champion`` back to ``previous`` (and ``previous`` to the version rolled back from)."""
    with registry_lock(client, name, by):
        current, previous = alias_version(client, name, CHAMPION), alias_version(client, name, PREVIOUS)
        if previous is None:
            raise LookupError(f"{name} has no '{PREVIOUS}' version to roll back to (champion: {current})")
        client.set_registered_model_alias(name, CHAMPION, previous)
        if current is not None:
            client.set_registered_model_alias(name, PREVIOUS, current)
            client.set_model_version_tag(name, current, "mlops_ops.rolled_back",
                                         f"{datetime.now(UTC).isoformat()} by {by}: {reason}")  # fmt: skip
        return {"model_name": name, "champion": previous, "previous": current, "changed": True}
