"""Stopping uv processes that outlived the operation that started them.

uv runs in its own process group (so a timeout can stop everything it
started), which also means a manager killed with -9 leaves its uv running.
Recovery, holding the env's lock, knows that no live operation works in a
half-built generation or store entry; any process still working there is
such an orphan, and it must be stopped before its folder is removed: a uv
whose project folder disappears under it goes looking for a project upwards
and can reach the env's live files. Processes are found through ``/proc``
(their working directory, or the ``UV_PROJECT_ENVIRONMENT`` they were given);
where there is no ``/proc`` this does nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

_PROC = Path("/proc")


def stop_processes_in(directory: Path, *, wait: float = 5.0) -> list[int]:
    """SIGKILL every process working or building a venv in ``directory``; return survivors."""
    target = str(directory)
    victims = [pid for pid in _pids() if pid != os.getpid() and _works_in(pid, target)]
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + wait
    while victims and time.monotonic() < deadline:
        victims = [pid for pid in victims if _alive(pid)]
        if victims:
            time.sleep(0.01)
    return victims


def _pids() -> list[int]:
    try:
        return [int(entry.name) for entry in _PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return []


def _inside(path: str, target: str) -> bool:
    path = path.removesuffix(" (deleted)")
    return path == target or path.startswith(target + os.sep)


def _works_in(pid: int, target: str) -> bool:
    try:
        if _inside(os.readlink(_PROC / str(pid) / "cwd"), target):
            return True
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    for item in environ.split(b"\0"):
        if item.startswith(b"UV_PROJECT_ENVIRONMENT="):
            value = item.split(b"=", 1)[1].decode(errors="replace")
            return _inside(value, target)
    return False


def _alive(pid: int) -> bool:
    try:
        status = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    # A killed child not yet reaped by its (dead) parent shows as a zombie: gone for us.
    return status.rsplit(")", 1)[-1].split()[0] != "Z"
