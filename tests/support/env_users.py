"""Real processes that use an env without a lease: its interpreter, its folder as cwd, a file.

Each waits until it is doing what it claims (it prints ``ready``), and every
one started is killed when the test ends (:meth:`EnvUsers.stop_all`).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import attrs

from uv_envs import Environment

# Imports from the env, then sleeps: the shape of a Ray worker or a node's own process.
_IMPORT_AND_SLEEP = "import alpha, time; print('ready', flush=True); time.sleep(600)"
_SLEEP = "import time; print('ready', flush=True); time.sleep(600)"
# The path comes on stdin so that the command line names nothing under the root.
_HOLD_OPEN = (
    "import sys, time; held = open(sys.stdin.readline().strip(), 'rb');"
    " print('ready', flush=True); time.sleep(600)"
)

# Maps the file and closes it: only the process's memory map names it afterwards (libc's
# mmap: Python's mmap module keeps a duplicate descriptor open, which fd/ would show).
_MAP = (
    "import ctypes, os, sys, time; path = sys.stdin.readline().strip()\n"
    "libc = ctypes.CDLL(None, use_errno=True); libc.mmap.restype = ctypes.c_void_p\n"
    "libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,"
    " ctypes.c_int, ctypes.c_long]\n"
    "fd = os.open(path, os.O_RDONLY)\n"
    "held = libc.mmap(None, os.fstat(fd).st_size, 1, 2, fd, 0)  # PROT_READ, MAP_PRIVATE\n"
    "os.close(fd); assert held not in (None, ctypes.c_void_p(-1).value)\n"
    "print('ready', flush=True); time.sleep(600)"
)


def store_file(environment: Environment) -> Path:
    """A file of the store entry the env's current generation links (alpha's module)."""
    venv = (environment.env_path / ".venv").resolve()
    (found,) = venv.glob("lib/python*/site-packages/alpha/__init__.py")
    return found


@attrs.define
class EnvUsers:
    """The processes a test started; killed by :meth:`stop_all`."""

    started: list[subprocess.Popen[str]] = attrs.field(factory=list)

    def _start(self, argv: list[str], cwd: Path | None = None, stdin: str = "") -> int:
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started.append(process)
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(stdin + "\n")
        process.stdin.flush()
        line = process.stdout.readline().strip()
        assert line == "ready", (line, process.stderr.read() if process.stderr else "")
        return process.pid

    def interpreter(self, python: Path) -> int:
        """A Python started from ``python`` (an env's python_path) that imported alpha."""
        return self._start([str(python), "-c", _IMPORT_AND_SLEEP])

    def working_directory(self, directory: Path) -> int:
        """A Python (not the env's) whose working directory is ``directory``."""
        return self._start([sys.executable, "-c", _SLEEP], cwd=directory)

    def open_file(self, path: Path) -> int:
        """A Python (not the env's) that holds ``path`` open."""
        return self._start([sys.executable, "-c", _HOLD_OPEN], stdin=str(path))

    def mapped_file(self, path: Path) -> int:
        """A Python (not the env's) that has ``path`` mapped, and no descriptor of it open."""
        return self._start([sys.executable, "-c", _MAP], stdin=str(path))

    def stop(self, pid: int) -> None:
        for process in self.started:
            if process.pid == pid:
                process.kill()
                process.communicate(timeout=30)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.communicate(timeout=30)
