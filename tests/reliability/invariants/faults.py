"""Faults at the lake's commit points: every table commit of every writer goes through the catalog's
``commit_table`` (pyiceberg's one door to the catalog), so wrapping it reaches each commit boundary.

At the commit the plan picks, the harness either crashes before it (the process dies: nothing of the commit
lands), crashes right after it (the commit landed; the caller never learns), or runs a second writer first and
then lets the first one commit (two runs interleaved at that point).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["before", "after", "interleave"]


class Crash(BaseException):
    """The process died at a commit point (a BaseException: ``except Exception`` in the code under test does not
    see it, as it would not see SIGKILL)."""


@dataclass
class Plan:
    at: int  # the n-th commit of the step, from 1
    kind: Kind


class CommitFaults:
    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self.real = catalog.commit_table
        catalog.commit_table = self._commit
        self.plan: Plan | None = None
        self.twin: Callable[[], None] | None = None
        self.count = 0
        self.fired: Kind | None = None

    def arm(self, plan: Plan | None, twin: Callable[[], None] | None = None) -> None:
        self.plan, self.twin, self.count, self.fired = plan, twin, 0, None

    def disarm(self) -> None:
        self.plan = self.twin = None

    def _commit(self, table: Any, requirements: Any, updates: Any) -> Any:
        plan = self.plan
        if plan is None:
            return self.real(table, requirements, updates)
        self.count += 1
        if self.count != plan.at:
            return self.real(table, requirements, updates)
        self.plan, self.fired = None, plan.kind  # one fault per step
        if plan.kind == "before":
            raise Crash(f"killed before commit {plan.at}")
        if plan.kind == "after":
            self.real(table, requirements, updates)
            raise Crash(f"killed after commit {plan.at}")
        assert self.twin is not None
        self.twin()  # the second writer runs to its end between this writer's reads and its commit
        return self.real(table, requirements, updates)


# the MLflow client calls that change the registry: a promotion or rollback may die before any of them
WRITES = {"set_registered_model_alias", "set_model_version_tag", "set_registered_model_tag",
          "delete_registered_model_tag"}  # fmt: skip


class CrashingClient:
    """The MLflow client, dying before its ``at``-th registry write (the process is gone: nothing after it runs)."""

    def __init__(self, client: Any, at: int | None) -> None:
        self._client, self._at, self._writes = client, at, 0

    def __getattr__(self, attr: str) -> Any:
        real = getattr(self._client, attr)
        if attr not in WRITES or self._at is None:
            return real

        def write(*args: Any, **kwargs: Any) -> Any:
            self._writes += 1
            if self._writes == self._at:
                self._at = None
                raise Crash(f"killed before write {self._writes} ({attr})")
            return real(*args, **kwargs)

        return write
