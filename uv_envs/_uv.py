"""Talking to uv: command lines built by pure functions, run in one place.

The builders return a :class:`UvInvocation` (argv after the binary, working
directory, extra environment, timeout) and never run anything, so they are
tested without subprocesses. :class:`SubprocessUvExecutor` is the only code
that starts uv. User strings only ever follow ``--`` or are values of options
given as separate argv items, so uv never reads them as flags.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Literal, Protocol

import attrs

from ._errors import OperationCancelled, ResolutionFailed, UvError, UvNotFound, UvTimeout
from ._models import IndexSettings

ExportFormat = Literal["requirements.txt", "pylock.toml"]

# Variables that would make uv behave differently from what the settings say.
_SCRUBBED_PREFIXES = ("UV_", "PIP_")
_SCRUBBED_NAMES = frozenset({"VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH"})


@attrs.frozen
class UvOptions:
    """The settings every uv call carries; a slice of :class:`~uv_envs.Settings`."""

    cache_dir: Path
    index: IndexSettings = IndexSettings()
    python_downloads: str = "never"
    compile_bytecode: bool = False
    timeout: float | None = None


@attrs.frozen
class UvInvocation:
    """One uv command: argv after the binary, where to run it, what to add to its env."""

    args: tuple[str, ...]
    cwd: Path | None = None
    env: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float | None = None
    # Set by the caller to stop uv early; the executor then raises OperationCancelled.
    cancel: threading.Event | None = attrs.field(default=None, eq=False, repr=False)


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


# --- builders ---------------------------------------------------------------------------


def _index_args(index: IndexSettings) -> list[str]:
    args: list[str] = []
    if index.index_url:
        args += ["--default-index", index.index_url]
    for url in index.extra_index_urls:
        args += ["--index", url]
    for link in index.find_links:
        args += ["--find-links", link]
    if index.no_index:
        args.append("--no-index")
    if index.offline:
        args.append("--offline")
    return args


def _common_args(options: UvOptions, python: str | None) -> list[str]:
    args = [
        "--no-config",
        "--no-progress",
        "--color",
        "never",
        "--cache-dir",
        str(options.cache_dir),
    ]
    if python is not None:
        args += ["--python", python]
    return args


def _env(
    options: UvOptions, project_dir: Path | None = None, venv: Path | None = None
) -> dict[str, str]:
    env = {"UV_PYTHON_DOWNLOADS": options.python_downloads}
    if project_dir is not None:
        # Each venv is built where it will live: venvs cannot move.
        env["UV_PROJECT_ENVIRONMENT"] = str(venv if venv is not None else project_dir / ".venv")
    return env


def lock_command(
    project_dir: Path,
    python: str,
    options: UvOptions,
    *,
    upgrade: bool = False,
    upgrade_packages: Sequence[str] = (),
    check: bool = False,
) -> UvInvocation:
    """``uv lock`` in a project dir: resolve, optionally upgrading, or only ``--check``."""
    args = ["lock", *_common_args(options, python), *_index_args(options.index)]
    if check:
        args.append("--check")
    if upgrade:
        args.append("--upgrade")
    for name in upgrade_packages:
        args += ["--upgrade-package", name]
    return UvInvocation(tuple(args), project_dir, _env(options, project_dir), options.timeout)


def sync_command(
    project_dir: Path,
    python: str,
    options: UvOptions,
    *,
    venv: Path | None = None,
    refresh: bool = False,
) -> UvInvocation:
    """``uv sync --frozen``: build a venv (``<project>/.venv`` or ``venv``) from the lock."""
    args = ["sync", "--frozen", *_common_args(options, python), *_index_args(options.index)]
    if options.compile_bytecode:
        args.append("--compile-bytecode")
    if refresh:
        # uv hard-links installed files from its cache: a damaged file may be
        # damaged there too, so a repair bypasses the cache and unpacks everything again.
        args += ["--no-cache", "--reinstall"]
    return UvInvocation(tuple(args), project_dir, _env(options, project_dir, venv), options.timeout)


def add_command(
    project_dir: Path,
    python: str,
    options: UvOptions,
    requirements: Iterable[str] = (),
    *,
    requirements_file: Path | None = None,
    upgrade_packages: Iterable[str] = (),
) -> UvInvocation:
    """``uv add --no-sync``: declare requirements and re-lock, leaving venvs alone.

    ``upgrade_packages`` also lets the lock move those packages to newer versions.
    """
    args = ["add", "--no-sync", *_common_args(options, python), *_index_args(options.index)]
    if requirements_file is not None:
        args += ["--requirements", str(requirements_file)]
    for name in upgrade_packages:
        args += ["--upgrade-package", name]
    args += ["--", *requirements]
    return UvInvocation(tuple(args), project_dir, _env(options, project_dir), options.timeout)


def remove_command(
    project_dir: Path, python: str, options: UvOptions, names: Iterable[str]
) -> UvInvocation:
    """``uv remove --no-sync``: drop declared requirements and re-lock."""
    args = ["remove", "--no-sync", *_common_args(options, python), *_index_args(options.index)]
    args += ["--", *names]
    return UvInvocation(tuple(args), project_dir, _env(options, project_dir), options.timeout)


def export_command(project_dir: Path, options: UvOptions, fmt: ExportFormat) -> UvInvocation:
    """``uv export --frozen`` of the lock into another format, printed on stdout."""
    args = ["export", "--frozen", "--format", fmt, *_common_args(options, None)]
    return UvInvocation(tuple(args), project_dir, _env(options, project_dir), options.timeout)


def cache_clean_command(options: UvOptions, names: Iterable[str]) -> UvInvocation:
    """``uv cache clean`` of some packages, e.g. after their cached files were found damaged."""
    args = ["cache", "clean", *_common_args(options, None), "--", *names]
    return UvInvocation(tuple(args), None, _env(options), options.timeout)


def python_list_command(options: UvOptions) -> UvInvocation:
    """``uv python list`` of installed interpreters, as JSON."""
    args = ["python", "list", "--only-installed", "--output-format", "json"]
    args += _common_args(options, None)
    return UvInvocation(tuple(args), None, _env(options), options.timeout)


# --- running ----------------------------------------------------------------------------


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
            threading.Thread(target=_pump, args=(process.stdout, stdout_chunks, None), daemon=True),
            threading.Thread(
                target=_pump, args=(process.stderr, stderr_chunks, self.progress), daemon=True
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
                stderr="".join(stderr_chunks),
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


def _pump(stream: IO[str] | None, sink: list[str], echo: IO[str] | None) -> None:
    if stream is None:
        return
    with stream:
        for line in stream:
            sink.append(line)
            if echo is not None:
                echo.write(line)
                echo.flush()


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
    error_type = (
        ResolutionFailed
        if any(marker in result.stderr for marker in _RESOLUTION_MARKERS)
        else UvError
    )
    raise error_type(
        message,
        command=result.command,
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
    )
