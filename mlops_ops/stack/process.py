"""Start, identify and stop the stack's child processes by PID.

A PID file records the PID *and* the process start time, so a recycled PID that now
belongs to some other program is never signalled. Each service runs in its own
session (process group), so stopping it also stops the helpers it forked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from mlops_ops.exceptions import MissingExtraError

try:
    import psutil
except ImportError as err:  # the embedded stack's process control; not part of a deployment's install
    raise MissingExtraError("psutil", "stack") from err


@dataclass(frozen=True)
class PidRecord:
    pid: int
    create_time: float
    command: list[str]

    def process(self) -> psutil.Process | None:
        """The live process this record names, or ``None`` if it exited or the PID was reused."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.5 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None


def read_pidfile(path: Path) -> PidRecord | None:
    try:
        raw = json.loads(path.read_text())
        return PidRecord(int(raw["pid"]), float(raw["create_time"]), list(raw["command"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def spawn(command: list[str], *, pidfile: Path, logfile: Path, env: dict[str, str], cwd: Path) -> PidRecord:
    """Start ``command`` detached in a new session, logging to ``logfile``; record it in ``pidfile``."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    record = PidRecord(proc.pid, psutil.Process(proc.pid).create_time(), command)
    tmp = pidfile.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": record.pid, "create_time": record.create_time, "command": command}))
    tmp.replace(pidfile)
    return record


def stop(record: PidRecord, *, timeout: float = 15.0) -> bool:
    """SIGTERM the process group of ``record``, then SIGKILL what is left. True if something was stopped."""
    proc = record.process()
    if proc is None:
        return False
    family = [proc, *_children(proc)]
    _signal_group(record.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(family, timeout=timeout)
    if alive:
        _signal_group(record.pid, signal.SIGKILL)
        for p in alive:
            try:
                p.kill()
            except psutil.Error:
                pass
        psutil.wait_procs(alive, timeout=5)
    return True


def _children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return proc.children(recursive=True)
    except psutil.Error:
        return []


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_is_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pick_free_ports(count: int, *, start: int = 20000, end: int = 32000, taken: set[int] | None = None) -> list[int]:
    """``count`` distinct free loopback ports below the ephemeral range, so the kernel won't hand them out."""
    taken = set(taken or ())
    seed = (os.getpid() * 7919 + int(time.time())) % (end - start)
    ports: list[int] = []
    for offset in range(end - start):
        port = start + (seed + offset) % (end - start)
        if port not in taken and port_is_free(port):
            ports.append(port)
            taken.add(port)
            if len(ports) == count:
                return ports
    raise OSError(f"no {count} free ports between {start} and {end} on 127.0.0.1")
