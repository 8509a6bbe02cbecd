"""Running uv: the ``UvExecutor`` port, its subprocess implementation, and uv's identity.

:class:`SubprocessUvExecutor` is the only code in uv-envs that starts uv: an
argv list, never a shell, in a scrubbed environment so that only the settings
decide what uv does, its process group killed on timeout or cancel.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

import attrs

from uv_envs._errors import (
    HashMismatch,
    OperationCancelled,
    ResolutionFailed,
    UvError,
    UvNotFound,
    UvTimeout,
)
from uv_envs._urls import redact

from .commands import UvInvocation

# Variables that would make uv behave differently from what the settings say.
_SCRUBBED_PREFIXES = ("UV_", "PIP_")
_SCRUBBED_NAMES = frozenset({"VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH"})


@attrs.frozen
class UvResult:
    """What one uv command did."""

    command: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str
    duration_ms: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class UvExecutor(Protocol):
    """Runs uv. The real one starts a subprocess; ``uv_envs.testing`` has a fake."""

    def run(self, invocation: UvInvocation) -> UvResult:
        """Run one invocation; return its result whatever the exit code.

        Raises :class:`~uv_envs.UvTimeout` past the invocation's timeout and
        :class:`~uv_envs.UvNotFound` when there is no uv binary.
        """
        ...


@runtime_checkable
class IdentifiesUv(Protocol):
    """An executor that can say, without running uv, which uv it runs.

    An optional second face of a :class:`UvExecutor` (``SubprocessUvExecutor``
    and the fakes have it): the warm path trusts a stored lock only when the uv
    that vouched for it is the uv that runs now, so an executor without it never
    skips the check.
    """

    def identity(self) -> str | None:
        """A string that changes whenever the uv binary does; None if unknown."""
        ...


def uv_identity(executor: UvExecutor) -> str | None:
    """The identity of the uv an executor runs, or None when it cannot tell."""
    return executor.identity() if isinstance(executor, IdentifiesUv) else None


def binary_identity(binary: str) -> str | None:
    """``<resolved path>:<size>:<mtime in ns>`` of an executable, or None if it is missing."""
    found = binary if os.sep in binary else shutil.which(binary)
    if found is None:
        return None
    try:
        resolved = Path(found).resolve()
        info = resolved.stat()
    except OSError:
        return None
    return f"{resolved}:{info.st_size}:{info.st_mtime_ns}"


def find_uv_binary(configured: str | None = None) -> str:
    """The configured binary, else the one the ``uv`` package ships, else ``uv`` on PATH."""
    if configured:
        return configured
    try:
        from uv import find_uv_bin  # noqa: PLC0415 - optional at import time

        return str(find_uv_bin())
    except (ImportError, FileNotFoundError):
        pass
    found = shutil.which("uv")
    if found is None:
        raise UvNotFound("no uv binary: install the 'uv' package or set UV_ENVS_UV_BIN")
    return found


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The parent's environment without what would steer uv, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_SCRUBBED_PREFIXES) and name not in _SCRUBBED_NAMES
    }
    env.update(extra)
    return env


@attrs.define
class SubprocessUvExecutor:
    """Runs uv as a subprocess, never through a shell.

    Args:
        binary: path of the uv executable (see :func:`find_uv_binary`).
        progress: a stream to copy uv's stderr to while it runs (the CLI passes
            the terminal); stderr is captured either way.

    """

    binary: str = attrs.field(factory=find_uv_binary)
    progress: IO[str] | None = None

    def identity(self) -> str | None:
        """Which uv this runs, from its binary's file (no subprocess); see ``_store.provenance``."""
        return binary_identity(self.binary)

    def run(self, invocation: UvInvocation) -> UvResult:
        command = (self.binary, *invocation.args)
        started = time.monotonic()
        try:
            process = subprocess.Popen(
                command,
                cwd=invocation.cwd,
                env=child_environment(invocation.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                # Its own process group, so a timeout stops uv and whatever uv started.
                process_group=0,
            )
        except OSError as exc:
            if invocation.cwd is not None and not Path(invocation.cwd).is_dir():
                raise UvError(f"uv's working directory {invocation.cwd} does not exist") from exc
            raise UvNotFound(f"cannot run the uv binary {self.binary}: {exc}") from exc
        stdout_chunks: list[str] = []
        stderr_chunks: list[str] = []
        readers = [
            threading.Thread(
                target=_pump, args=(process.stdout, stdout_chunks, None, None), daemon=True
            ),
            threading.Thread(
                target=_pump,
                args=(process.stderr, stderr_chunks, self.progress, invocation.stderr_line),
                daemon=True,
            ),
        ]
        for reader in readers:
            reader.start()
        deadline = None if invocation.timeout is None else started + invocation.timeout
        try:
            outcome = _wait(process, readers, deadline, invocation.cancel)
        except BaseException:
            # KeyboardInterrupt and friends: never leave uv writing behind us.
            _kill_group(process)
            raise
        cancelled, timed_out = outcome == "cancelled", outcome == "timed out"
        if cancelled:
            raise OperationCancelled(f"uv {invocation.args[0]} was cancelled")
        if timed_out:
            raise UvTimeout(
                f"uv ran longer than {invocation.timeout} s and was stopped",
                command=command,
                stderr=redact("".join(stderr_chunks)) or "",
            )
        return UvResult(
            command=command,
            exit_code=process.returncode,
            stdout="".join(stdout_chunks),
            stderr="".join(stderr_chunks),
            duration_ms=int((time.monotonic() - started) * 1000),
        )


def _wait(
    process: subprocess.Popen[str],
    readers: list[threading.Thread],
    deadline: float | None,
    cancel: threading.Event | None,
) -> str:
    """Wait for uv: ``"done"``, ``"timed out"`` or ``"cancelled"`` (then uv is stopped).

    It waits on the pipes rather than with ``Popen.wait(timeout)``, which
    polls with sleeps of up to 50 ms.
    """
    cancelled = cancel is not None and _wait_cancellable(readers, deadline, cancel)
    if not cancelled:
        for reader in readers:
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    outcome = "cancelled" if cancelled else "done"
    if cancelled or any(reader.is_alive() for reader in readers):
        # uv still runs, or uv exited and a child of its holds the pipes.
        if not cancelled and process.poll() is None:
            outcome = "timed out"
        _kill_group(process)
        for reader in readers:
            reader.join(timeout=5)
    process.wait()
    return outcome


def _wait_cancellable(
    readers: list[threading.Thread], deadline: float | None, cancel: threading.Event
) -> bool:
    """Wait for the readers like ``join``, but return True as soon as ``cancel`` is set."""
    while any(reader.is_alive() for reader in readers):
        if cancel.wait(0.05):
            return True
        if deadline is not None and time.monotonic() > deadline:
            return False
    return cancel.is_set()


def _kill_group(process: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    process.wait()


def _pump(
    stream: IO[str] | None,
    sink: list[str],
    echo: IO[str] | None,
    listener: Callable[[str], None] | None,
) -> None:
    if stream is None:
        return
    with stream:
        for line in stream:
            sink.append(line)
            if echo is not None:
                echo.write(line)
                echo.flush()
            if listener is not None:
                listener(line)


# uv's words when a downloaded file is not the one the lock names.
_HASH_MISMATCH = "Hash mismatch for"
_RESOLUTION_MARKERS = (
    "No solution found",
    "not found in the package registry",
    "not found in the provided package locations",
    "was not found in the",
    "unsatisfiable",
    "Because there is no version of",
)


def raise_for_result(result: UvResult, message: str) -> UvResult:
    """Return a successful result; raise the fitting :class:`UvError` for a failed one."""
    if result.ok:
        return result
    error: type[UvError] = UvError
    if _HASH_MISMATCH in result.stderr:
        error = HashMismatch
    elif any(marker in result.stderr for marker in _RESOLUTION_MARKERS):
        error = ResolutionFailed
    # The error's text reaches clients, events and the audit log: uv's output
    # quotes the URLs it fetched, relayed ones with the relay's token.
    raise error(
        message,
        command=tuple(redact(arg) or "" for arg in result.command),
        exit_code=result.exit_code,
        stdout=redact(result.stdout) or "",
        stderr=redact(result.stderr) or "",
    )
