"""The executor's workers hold what it preloaded: read from their memory maps (a C extension only the preloaded
package loads), in a fresh interpreter so nothing else imported it first."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from mlops_ops.executors import WARM_LOCAL_EXECUTOR
from mlops_ops.executors.preload import ENV_SETTING

PROBE = textwrap.dedent(
    """
    import multiprocessing, sys
    multiprocessing.set_start_method(sys.argv[1])
    from mlops_ops.executors.local import WarmLocalExecutor
    executor = WarmLocalExecutor(parallelism=1)
    executor.start()
    if sys.argv[1] != "fork":
        executor._spawn_worker()  # spawned workers start on demand
    (pid,) = executor.workers
    maps = open(f"/proc/{pid}/maps").read()
    print("sklearn-in-worker" if "/sklearn/" in maps else "sklearn-absent")
    executor.end()
    """
)


def _probe(preload: str, method: str = "fork") -> str:
    env = {**os.environ, ENV_SETTING: preload}
    done = subprocess.run([sys.executable, "-c", PROBE, method], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_the_class_path_names_the_executor() -> None:
    from mlops_ops.executors.local import WarmLocalExecutor

    assert f"{WarmLocalExecutor.__module__}.{WarmLocalExecutor.__name__}" == WARM_LOCAL_EXECUTOR


def test_forked_workers_inherit_the_preloaded_modules() -> None:
    out = _probe("sklearn")
    assert "sklearn-in-worker" in out and "preloaded 1 of 1 modules" in out


def test_without_fork_nothing_is_preloaded_and_the_log_says_why() -> None:
    out = _probe("sklearn", "spawn")
    assert "start method spawn" in out and "nothing preloaded" in out
    assert "sklearn-absent" in out  # also the control of the test above: a worker that did not inherit shows none
