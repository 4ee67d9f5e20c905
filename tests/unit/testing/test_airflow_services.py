"""AirflowServices leaves no process behind when one of Airflow's processes dies at start-up."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlops_ops.testing.airflow_services import AirflowServices


def test_a_process_dying_at_start_up_stops_the_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "airflow"
    fake.write_text('#!/bin/sh\n[ "$1" = scheduler ] && { echo "no scheduler today"; exit 3; }\nexec sleep 120\n')
    fake.chmod(0o755)
    services = AirflowServices(tmp_path / "home", tmp_path, {}, celery_workers=1)
    services.airflow = str(fake)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: None)  # no `airflow db migrate`
    with pytest.raises(RuntimeError, match="airflow scheduler exited with 3"):
        services.start(timeout=60)
    assert set(services.processes) == {"scheduler", "dag-processor", "triggerer", "api-server", "celery-worker1"}
    assert all(p.poll() is not None for p in services.processes.values())  # every other process was stopped
    assert "no scheduler today" in services.logs()
