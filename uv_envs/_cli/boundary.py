"""The one error boundary of the ``uv-envs`` command line: a failure is one line and a code.

Every expected failure (a core error, an unusable root, a server not reached,
a closed pipe) ends as one line on stderr, in the command line's words, and
the exit code of the README's table; a traceback is shown only with
``--debug`` or ``UV_ENVS_DEBUG=1``. The core's messages are neutral (they
serve the library, HTTP and gRPC too); this module words them for a terminal:
the parameter an error names becomes the flag that sets it, and a way out
names the command to run.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import Final

from uv_envs._errors import (
    EnvironmentAlreadyExists,
    EnvironmentBusy,
    EnvironmentInUse,
    EnvironmentNotFound,
    EnvironmentNotReady,
    InvalidInput,
    UvEnvsError,
)
from uv_envs._models import EnvKey

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_BAD_INPUT: Final = 2
EXIT_NOT_FOUND: Final = 3
EXIT_BUSY: Final = 4
EXIT_CONFLICT: Final = 5
#: Interrupted (Ctrl-C), as a shell reports a process ended by SIGINT.
EXIT_INTERRUPTED: Final = 130
#: The reader of stdout went away (``| head``), as a shell reports SIGPIPE.
EXIT_PIPE_CLOSED: Final = 141

#: Exit codes by error class, most specific first (README, "Exit codes").
_CODES: Final[tuple[tuple[type[UvEnvsError], int], ...]] = (
    (InvalidInput, EXIT_BAD_INPUT),
    (EnvironmentNotFound, EXIT_NOT_FOUND),
    (EnvironmentBusy, EXIT_BUSY),
    (EnvironmentAlreadyExists, EXIT_CONFLICT),
    (EnvironmentNotReady, EXIT_CONFLICT),
    (EnvironmentInUse, EXIT_CONFLICT),
)

#: The library's parameter names, as the command line's flags spell them.
FLAGS: Final = {
    "root": "--root",
    "force": "--force",
    "idle_seconds": "--idle-hours",
    "min_idle_seconds": "--min-idle-hours",
    "max_bytes": "--max-bytes",
    "lock_timeout": "--lock-timeout",
    "python": "--python",
    "packages": "-p/--package",
    "requirements_text": "-r/--requirements",
    "operation_id": "--operation",
}

DEBUG_ENV: Final = "UV_ENVS_DEBUG"


class Refused(Exception):
    """A failure the command line words itself (a server it cannot reach ...)."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def exit_code(error: UvEnvsError) -> int:
    """The README's exit code for ``error``."""
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return EXIT_FAILED


def in_cli_words(error: UvEnvsError, command: str | None = None) -> str:
    """``error``'s message with the names of the library's parameters as the CLI's flags."""
    text = str(error)
    if isinstance(error, EnvironmentAlreadyExists) and isinstance(error.key, EnvKey):
        found = error.key
        key = " ".join(p for p in (found.workflow_id, found.node_id, found.version_id) if p)
        return (
            f"{error.headline}; run `uv-envs ensure {key} ...` with the new spec to move it "
            f"to that spec, or `uv-envs delete {key}` first"
        )
    for field in error.fields:
        if flag := FLAGS.get(field):
            text = re.sub(rf"\b{re.escape(field)}\b", flag, text)
    if isinstance(error, EnvironmentBusy) and command not in {None, "serve", "watch"}:
        text += "; another operation holds it: retry, or wait longer with --lock-timeout SECONDS"
    return text


def debugging(flag: bool) -> bool:  # noqa: FBT001 - the parsed --debug
    """Whether tracebacks are wanted: ``--debug``, or ``UV_ENVS_DEBUG`` set to a true value."""
    return flag or os.environ.get(DEBUG_ENV, "").lower() in {"1", "true", "yes", "on"}


def _pipe_closed() -> int:
    # Whatever is still buffered would fail again at exit: let it go nowhere.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE_CLOSED


def _os_message(error: OSError) -> str:
    reason = error.strerror or str(error)
    where = f" ({error.filename})" if error.filename else ""
    return f"{reason}{where}"


def _described(error: Exception, command: str | None) -> tuple[int, str, str]:
    """The exit code, the error's name and the line for an error run raised."""
    name = type(error).__name__
    if isinstance(error, UvEnvsError):
        return exit_code(error), name, in_cli_words(error, command)
    if isinstance(error, Refused):
        return error.code, name, str(error)
    if isinstance(error, OSError):
        return EXIT_FAILED, name, _os_message(error)
    return EXIT_FAILED, name, f"unexpected {name}: {error} (run again with --debug to see where)"


def guarded(
    run: Callable[[], int], *, as_json: bool, debug: bool, command: str | None = None
) -> int:
    """Run ``run``; turn whatever it raises into one line on stderr and an exit code."""
    try:
        code = run()
        sys.stdout.flush()
    except BrokenPipeError:
        return _pipe_closed()
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        expected = isinstance(exc, (UvEnvsError, Refused, OSError))
        if debug and not expected:
            raise
        code, name, text = _described(exc, command)
        if debug:
            traceback.print_exc()
    else:
        return code
    try:
        if as_json:
            print(json.dumps({"error": name, "message": text}, indent=2, sort_keys=True))
        print(f"uv-envs: error: {text}", file=sys.stderr)
        sys.stdout.flush()
    except BrokenPipeError:
        return _pipe_closed()
    return code
