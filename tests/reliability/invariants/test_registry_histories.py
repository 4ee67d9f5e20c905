"""The registry's promises over generated histories, with a crash before any MLflow write of a promotion or rollback.

A Hypothesis state machine registers versions (blessed or not), records approvals (against the champion of the
moment, or another), promotes, rolls back (to ``previous`` or a chosen version) against an in-process MLflow
registry on SQLite; a promotion or rollback may crash before its n-th write and is then retried. After every step:
the aliases are what the successful operations made them (``previous`` is the champion before it), no alias change
is left half done, the champion is blessed, and with approval on, approved against the champion it replaced.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from mlops_ops.training import registry
from mlops_ops.training.approval import APPROVAL_AGAINST_TAG, APPROVAL_TAG, NotApprovedError
from tests.reliability.invariants.faults import Crash, CrashingClient
from tests.reliability.invariants.settings import harness_settings

EXPECTED = (registry.NotBlessedError, NotApprovedError, LookupError)
NAMES = itertools.count()


class RegistryHistories(RuleBasedStateMachine):
    client: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.name = f"m{next(NAMES)}"
        self.client.create_registered_model(self.name)
        self.versions: list[str] = []
        self.champion: str | None = None
        self.previous: str | None = None
        self.require_approval = int(self.name[1:]) % 2 == 1
        self.approved_against: dict[str, str] = {}

    @rule(blessed=st.booleans())
    def register(self, blessed: bool) -> None:
        mv = self.client.create_model_version(self.name, source="file:///model",
                                              tags={"mlops_ops.blessed": str(blessed).lower()})  # fmt: skip
        self.versions.append(str(mv.version))

    @rule(pick=st.integers(0, 20), honest=st.booleans())
    def approve(self, pick: int, honest: bool) -> None:
        if self.versions:
            version = self.versions[pick % len(self.versions)]
            against = (self.champion or "none") if honest else "999"
            self.client.set_model_version_tag(self.name, version, APPROVAL_TAG, "approved")
            self.client.set_model_version_tag(self.name, version, APPROVAL_AGAINST_TAG, against)
            self.approved_against[version] = against

    @rule(pick=st.integers(0, 20), crash_at=st.none() | st.integers(1, 6))
    def promote(self, pick: int, crash_at: int | None) -> None:
        if self.versions:
            version = self.versions[pick % len(self.versions)]
            self._apply(crash_at, lambda c: registry.promote(c, self.name, version, by="h",
                                                             require_approval=self.require_approval))  # fmt: skip
            if self.require_approval and self.champion == version and self.previous is not None:
                assert self.approved_against.get(version) == self.previous, "approved for another champion"

    @rule(pick=st.none() | st.integers(0, 20), crash_at=st.none() | st.integers(1, 6))
    def rollback(self, pick: int | None, crash_at: int | None) -> None:
        to = None if pick is None or not self.versions else self.versions[pick % len(self.versions)]
        self._apply(crash_at, lambda c: registry.rollback(c, self.name, by="h", reason="bad", to=to))

    def _apply(self, crash_at: int | None, operation: Any) -> None:
        before = self.champion
        try:
            result = operation(CrashingClient(self.client, crash_at))
        except Crash:
            try:
                result = operation(self.client)  # the retry
            except EXPECTED:
                return
        except EXPECTED:
            return
        if result["changed"]:
            self.champion, self.previous = result["champion"], result["previous"]
            assert self.previous == before, f"previous {self.previous} is not the champion before it ({before})"

    @invariant()
    def aliases_are_what_the_operations_made(self) -> None:
        tags = self.client.get_registered_model(self.name).tags or {}
        assert registry.INTENT_TAG not in tags or self._settled_by_next(), "an alias change is left half done"
        assert registry.alias_version(self.client, self.name, registry.CHAMPION) == self.champion
        if self.previous is not None:
            assert registry.alias_version(self.client, self.name, registry.PREVIOUS) == self.previous
        if self.champion is not None:
            vtags = self.client.get_model_version(self.name, self.champion).tags
            assert vtags.get("mlops_ops.blessed") == "true", f"champion v{self.champion} is not blessed"

    def _settled_by_next(self) -> bool:
        return False


def test_registry_promises_hold_over_generated_histories(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    db = tmp_path / "mlflow.db"
    RegistryHistories.client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
    run_state_machine_as_test(RegistryHistories, settings=harness_settings(examples=15, steps=20))
