"""A process table for fast tests: processes that "use" paths, without starting any."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import attrs

from uv_envs._procs.scan import ProcessUse, ProcessView


@attrs.define
class FakeProcesses:
    """A :class:`~uv_envs.ProcessScanner` over processes a test declares.

    Example::

        processes = FakeProcesses()
        pid = processes.start(environment.python_path, command="python -m node.main")
        manager = EnvManager(settings, executor=..., processes=processes)
        manager.cleanup(0)  # keeps the env, reports the pid
        processes.stop(pid)

    """

    running: dict[int, ProcessView] = attrs.field(factory=dict)
    scans: int = 0
    _pids: itertools.count[int] = attrs.field(factory=lambda: itertools.count(100_000))

    def start(
        self,
        *paths: Path | str,
        use: ProcessUse = ProcessUse.INTERPRETER,
        command: str = "python",
        started_at: float | None = None,
    ) -> int:
        """Declare a process using ``paths`` in the way ``use`` says; return its pid."""
        pid = next(self._pids)
        self.running[pid] = ProcessView(
            pid=pid,
            command=command,
            started_at=time.time() if started_at is None else started_at,
            uses=tuple((str(path), use) for path in paths),
        )
        return pid

    def stop(self, pid: int) -> None:
        del self.running[pid]

    def scan(self, directory: Path) -> list[ProcessView]:
        self.scans += 1
        prefix = str(directory)
        return [
            view
            for view in self.running.values()
            if any(p == prefix or p.startswith(prefix + os.sep) for p, _ in view.uses)
        ]
