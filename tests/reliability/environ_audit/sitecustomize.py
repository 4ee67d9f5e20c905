"""Test-only: what each Airflow process holds in its environment (loaded through PYTHONPATH by
``tests/reliability/test_airflow_faults.py``; nothing here is part of the library).

``/proc/<pid>/environ`` shows only the block a process was started with (and Airflow's ``setproctitle`` overwrites it
with the process title), so each process records itself: with ``MLOPS_ENVIRON_AUDIT`` set to a folder, a new
interpreter writes the environment it started with, and an audit hook records every ``os.putenv`` (what assigning to
``os.environ`` calls) of it and of the processes it forks, one JSON line each in ``<folder>/<pid>.jsonl``. The role
(``api-server``, ``scheduler``, ...) is the Airflow command that started the process tree; children inherit it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROLES = ("api-server", "scheduler", "dag-processor", "triggerer")
_FOLDER = os.environ.get("MLOPS_ENVIRON_AUDIT")


def _write(record: dict[str, object]) -> None:
    record = {"pid": os.getpid(), "role": os.environ.get("MLOPS_ENVIRON_AUDIT_ROLE", "other"), **record}
    with (Path(_FOLDER or ".") / f"{os.getpid()}.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def _hook(event: str, args: tuple[object, ...]) -> None:
    if event == "os.putenv":
        key, value = (os.fsdecode(a) if isinstance(a, bytes | str) else str(a) for a in args)
        _write({"event": "putenv", "key": key, "value": value})


if _FOLDER:
    if "MLOPS_ENVIRON_AUDIT_ROLE" not in os.environ:  # the first Airflow process of a tree names the role
        words = Path("/proc/self/cmdline").read_bytes().decode(errors="replace").split("\0")
        os.environ["MLOPS_ENVIRON_AUDIT_ROLE"] = next((w for w in words if w in ROLES), "other")
    _write({"event": "start", "argv": list(getattr(sys, "argv", [])), "environ": dict(os.environ)})
    sys.addaudithook(_hook)
