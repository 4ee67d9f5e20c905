"""Promotion and rollback against an in-process MLflow registry: crash-safety (N6) and approvals bound to the
comparison they won (N7)."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_ops.training import registry
from mlops_ops.training.approval import APPROVAL_AGAINST_TAG, APPROVAL_TAG, NotApprovedError
from tests.reliability.invariants.faults import Crash, CrashingClient


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mlflow import MlflowClient

    db = tmp_path_factory.mktemp("registry") / "mlflow.db"
    return MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")


def _model(client: Any, name: str, versions: int) -> None:
    client.create_registered_model(name)
    for _ in range(versions):
        client.create_model_version(name, source="file:///m", tags={"mlops_ops.blessed": "true"})


def _aliases(client: Any, name: str) -> tuple[str | None, str | None]:
    return registry.alias_version(client, name, "champion"), registry.alias_version(client, name, "previous")


@pytest.mark.parametrize("crash_at", [1, 2, 3, 4, 5])
def test_a_rollback_killed_at_any_write_is_finished_by_its_retry(client: Any, crash_at: int) -> None:
    """N6: killed after ``previous`` moved, the old code left the bad model champion and the good one in no alias
    (the retry found nothing to do); killed before the tag, a second rollback rolled forward to the bad model."""
    name = f"rb{crash_at}"
    _model(client, name, 2)
    registry.promote(client, name, "1", by="t")
    registry.promote(client, name, "2", by="t")
    with pytest.raises(Crash):
        registry.rollback(CrashingClient(client, crash_at), name, by="ana", reason="bad v2")
    registry.rollback(client, name, by="ana", reason="bad v2")  # the retry
    assert _aliases(client, name) == ("1", "2")
    assert client.get_model_version(name, "2").tags[registry.ROLLED_BACK_TAG].endswith("by ana: bad v2")
    with pytest.raises(LookupError, match="rolled back from before"):
        registry.rollback(client, name, by="ana", reason="again")  # never rolls forward to the bad model
    assert registry.INTENT_TAG not in client.get_registered_model(name).tags


def test_a_cleared_promote_does_not_put_a_rolled_back_version_back(client: Any) -> None:
    """N7: clearing an old promote task re-promoted a rolled-back version with its sticky approval."""
    name = "cleared"
    _model(client, name, 2)
    registry.promote(client, name, "1", by="t")
    for key, value in {APPROVAL_TAG: "approved", APPROVAL_AGAINST_TAG: "1"}.items():
        client.set_model_version_tag(name, "2", key, value)
    registry.promote(client, name, "2", by="t", require_approval=True)
    registry.rollback(client, name, by="ana", reason="bad")
    with pytest.raises(registry.NotBlessedError, match="was rolled back"):
        registry.promote(client, name, "2", by="t", require_approval=True)  # the old task, cleared
    assert _aliases(client, name) == ("1", "2")
    registry.rollback(client, name, by="ana", reason="it was fine", to="2")  # a person chooses it by hand
    assert _aliases(client, name) == ("2", "1")


def test_an_approval_given_against_another_champion_does_not_promote(client: Any) -> None:
    name = "bound"
    _model(client, name, 3)
    registry.promote(client, name, "1", by="t")
    for key, value in {APPROVAL_TAG: "approved", APPROVAL_AGAINST_TAG: "2"}.items():
        client.set_model_version_tag(name, "3", key, value)  # approved when v2 was champion
    with pytest.raises(NotApprovedError, match="approved against champion 2, but the champion is 1"):
        registry.promote(client, name, "3", by="t", require_approval=True)
    assert _aliases(client, name) == ("1", None)
