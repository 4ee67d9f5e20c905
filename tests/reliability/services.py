"""Stop one service of the embedded stack mid-stage, and bring it back the way an operator would (`stack up`)."""

from __future__ import annotations

from mlops_ops.stack import EmbeddedStack, process


def stop_service(stack: EmbeddedStack, name: str) -> None:
    if name == "spark-connect":  # the server forgets this process's session: stop it, as a client of a restart must
        from mlops_ops.hooks.spark import stop_connect_sessions

        stop_connect_sessions()
    record = process.read_pidfile(stack.paths.pidfile(name))
    assert record is not None, f"{name} is not running"
    assert process.stop(record, timeout=10), f"{name} did not stop"


def restart_stack(stack: EmbeddedStack) -> None:
    """`mlops-ops stack up`: restarts what is down (same ports, same data folder), leaves the rest."""
    statuses = stack.up(airflow_db=False)
    assert all(s.healthy for s in statuses), statuses
