"""The link step of a store entry's build, started before the entry's venv exists.

:meth:`.compiler.BytecodePolicy.prepare` runs the worker in the entry's
interpreter and waits for it: an interpreter start and the worker's imports
(about 50 ms of a 75 ms step on the medium set) before the first link. A
:class:`EarlyLink` starts the same worker before the ``uv sync`` (the base
interpreter the venv is made from: the same magic number and cache tag, and
``-I -S`` keeps the venv's own paths out either way), where it waits on its
stdin; the job goes to it once the venv is installed, and the build waits for
its outcome only after the steps it can overlap (the Ray check, the digest).
Those neither read nor write what it links (``__pycache__`` folders, left out
of the digest and the manifest), and the manifest, the last step, is written
after the worker has finished.

A parent that dies before sending closes the pipe: the worker reads nothing
and exits, having written nothing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import attrs

#: The compiler's script; liveness ignores its processes (they take the compile lock).
WORKER = Path(__file__).with_name("worker.py")
#: Linking takes tens of ms; a worker stuck on a hung file system must not hold the create.
FINISH_TIMEOUT = 120.0


@attrs.define
class EarlyLink:
    """A link worker waiting for its job; :meth:`send` it, then :meth:`finish`."""

    process: subprocess.Popen[str]
    sent: bool = False

    @classmethod
    def start(cls, python: Path, cwd: Path) -> EarlyLink | None:
        """Start the worker in ``python``, waiting on its stdin; None if it cannot start."""
        try:
            process = subprocess.Popen(
                [str(python), "-I", "-S", str(WORKER), "-"],
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,  # a terminal's signals do not stop it half way
                env=worker_environment(),
            )
        except OSError:
            return None
        return cls(process)

    def send(self, job: str) -> None:
        """Hand the worker its job (a ``link`` job, as JSON); it starts linking at once."""
        stdin = self.process.stdin
        if stdin is None or self.sent:
            return
        try:
            stdin.write(job + "\n")
            stdin.close()
        except (OSError, ValueError):
            pass  # it died: finish() reports it, and the background compile follows
        self.sent = True

    def finish(self, timeout: float = FINISH_TIMEOUT) -> str:
        """Wait for the worker (stopped without a job if none was sent); its outcome line."""
        stdin, stdout = self.process.stdin, self.process.stdout
        if not self.sent and stdin is not None:
            with contextlib.suppress(OSError):
                stdin.close()  # no job: it reads nothing and exits
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return f"failed: no outcome within {timeout:g} s"
        # One short line, already in the pipe: reading after the exit cannot block.
        outcome = stdout.read().strip() if stdout is not None else ""
        if stdout is not None:
            stdout.close()
        if not self.sent:
            return "not sent"
        return outcome or f"exit {self.process.returncode}"


def worker_environment() -> dict[str, str]:
    """The worker's environment: ``-I`` already ignores PYTHON* variables; what locates things."""
    return {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL") if name in os.environ}
