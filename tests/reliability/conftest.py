"""The reliability suite uses the integration tests' embedded-stack fixtures."""

from __future__ import annotations

from tests.integration.conftest import bootstrap, postgres_stack, stack, topic

__all__ = ["bootstrap", "postgres_stack", "stack", "topic"]
