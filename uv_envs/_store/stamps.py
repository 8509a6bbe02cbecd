r"""The compact manifest of a venv and its cheap check: stdlib only, also a worker's launcher.

The manifest (:data:`NAME`, beside the venv a link resolves to) is text::

    uv-envs manifest 2
    <sha256 hex of every file's (size, mtime_ns), in the order below>
    <site-packages, relative to the venv>\0<name at its top>\0<name>...
    <directory, relative to the venv>\0<file name>\0<file name>...   (one line a directory)
    <empty line>
    <size> <mtime_ns>                                                (one line a file, same order)

A copy as built costs one read, one ``open`` a directory, one ``stat`` a file
(relative to the directory's descriptor: the kernel walks no long path), one
``listdir`` and one hash: the sound case compares one digest. Only when it
differs are the per-file stamps read, to say which files changed.

Run as a script with the env's own interpreter (``python -I -S stamps.py VENV
PROGRAM ON_DAMAGE ARGS...``) it is what a Ray worker starts through
(:func:`check_command`): the check, then ``os.execv`` of ``PROGRAM`` with
``ARGS`` (the same process, so the same pid for the Raylet); a copy that
differs is handed to ``ON_DAMAGE`` (a command that rebuilds it, then becomes
the worker), or, with none (``-``), waits a bounded time for another process
to rebuild it (:data:`REBUILT_WITHIN`) and then exits with status
:data:`DAMAGED`; either way it says what differs on stderr. So it imports
nothing outside the standard library.
"""

from __future__ import annotations

import hashlib
import os
import sys
from array import array

# The launcher starts before every worker: no ``typing`` import at run time (mypy and ruff
# read any constant named TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import NoReturn

#: Beside a venv (its store entry's, or its generation's): the compact manifest.
NAME = "manifest"
#: The manifest's first line; another first line is not this format (treated as absent).
HEADER = "uv-envs manifest 2"
#: The exit status of a worker launch refused for a changed copy.
DAMAGED = 86
#: How long a launch without ``ON_DAMAGE`` waits for a changed copy to be rebuilt (by
#: someone else: a server's reconciling round) before it refuses; under the 60 s Ray gives
#: a worker to register.
REBUILT_WITHIN = 40
#: Left out of the names at the top of ``site-packages``: Python writes bytecode there at import.
TRANSIENT = "__pycache__"

#: How many differences a refused launch names (the rest are counted).
_SHOWN = 10

_Groups = list[tuple[str, list[str]]]


def _stamp_values(base: str, groups: _Groups) -> array[int] | None:
    """Each file's size and mtime, in order; ``None`` as soon as one is missing."""
    values: array[int] = array("q")
    push = values.append
    stat = os.stat
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    for directory, names in groups:
        try:
            handle = os.open(f"{base}/{directory}", flags)
        except OSError:
            return None
        try:
            for name in names:
                info = stat(name, dir_fd=handle)
                push(info.st_size)
                push(info.st_mtime_ns)
        except OSError:
            return None
        finally:
            os.close(handle)
    return values


def top_names(base: str, site: str) -> list[str]:
    """The sorted names at the top of ``site`` (relative to ``base``), bytecode left out."""
    try:
        return sorted(name for name in os.listdir(f"{base}/{site}") if name != TRANSIENT)  # noqa: PTH208
    except OSError:
        return []


def encode(
    base: str, site: str, paths: Sequence[str]
) -> tuple[str, list[tuple[str, int, int]], list[str]]:
    """The manifest of the venv at ``base`` now, over those of ``paths`` that exist.

    Also what it holds: ``(path, size, mtime_ns)`` of each file, and the names
    at the top of ``site``. A path holding a newline or NUL cannot be written
    in this format and is left out (no wheel ships one); so is a file missing now.
    """
    by_dir: dict[str, list[tuple[str, int, int]]] = {}
    stamped: list[tuple[str, int, int]] = []
    for path in paths:
        if "\n" in path or "\0" in path:
            continue
        try:
            info = os.stat(f"{base}/{path}")  # noqa: PTH116 - plain strings: thousands of files
        except OSError:
            continue
        directory, _, name = path.rpartition("/")
        by_dir.setdefault(directory, []).append((name, info.st_size, info.st_mtime_ns))
        stamped.append((path, info.st_size, info.st_mtime_ns))
    values: array[int] = array("q")
    for files in by_dir.values():
        for _, size, mtime in files:
            values.extend((size, mtime))
    top = top_names(base, site)
    lines = [HEADER, hashlib.sha256(values.tobytes()).hexdigest(), "\0".join([site, *top])]
    lines += ["\0".join([directory, *(f[0] for f in files)]) for directory, files in by_dir.items()]
    lines.append("")
    lines += [f"{size} {mtime}" for files in by_dir.values() for _, size, mtime in files]
    return "\n".join(lines) + "\n", stamped, top


def manifest_file(venv: str) -> str:
    """Where ``venv``'s manifest is kept: beside the venv it resolves to."""
    return os.path.join(os.path.dirname(os.path.realpath(venv)), NAME)  # noqa: PTH118, PTH120


def check(venv: str) -> list[str] | None:
    """What changed in ``venv`` since its manifest was written; ``None``: no manifest."""
    try:
        with open(manifest_file(venv), encoding="utf-8") as handle:  # noqa: PTH123
            text = handle.read()
    except (OSError, ValueError):
        return None
    return compare(os.path.realpath(venv), text)


def compare(base: str, text: str) -> list[str] | None:
    """What changed in the venv at ``base`` (resolved) since ``text``; ``None``: not a manifest."""
    head, _, tail = text.partition("\n\n")
    lines = head.split("\n")
    if len(lines) < 3 or lines[0] != HEADER:  # noqa: PLR2004 - header, digest, top names
        return None  # another format (manifest.json of older releases): absent
    site, *entries = lines[2].split("\0")
    groups = [(parts[0], parts[1:]) for parts in (line.split("\0") for line in lines[3:])]
    values = _stamp_values(base, groups)
    found: list[str] = []
    if values is None or hashlib.sha256(values.tobytes()).hexdigest() != lines[1]:
        found = _which_files(base, groups, tail.split("\n"))
    now = set(top_names(base, site))
    found += [f"{name} was added to site-packages" for name in sorted(now.difference(entries))]
    found += [f"{name} is missing from site-packages" for name in sorted(set(entries) - now)]
    return found


def _which_files(base: str, groups: _Groups, stamp_lines: list[str]) -> list[str]:
    """The slow half of :func:`check`: which recorded files moved or vanished, sorted."""
    found = []
    index = 0
    for directory, names in groups:
        for name in names:
            path = f"{directory}/{name}"
            try:
                info = os.stat(f"{base}/{path}")  # noqa: PTH116 - plain strings, as above
            except OSError:
                found.append((path, f"{path} is missing"))
            else:
                if f"{info.st_size} {info.st_mtime_ns}" != stamp_lines[index]:
                    found.append((path, f"{path} changed (size or modification time)"))
            index += 1
    if not found:  # the digest differs but no stamp does: the manifest itself was altered
        found.append(("", "the manifest does not match its own stamps"))
    return [phrase for _, phrase in sorted(found)]


def check_command(python: str, venv: str, on_damage: Sequence[str] = ()) -> str:
    """A Ray ``py_executable`` that runs ``python`` only once ``venv`` passes :func:`check`.

    ``on_damage``: a command run instead of refusing, with ``python`` and the
    worker's arguments appended (one that rebuilds the copy and then becomes
    the worker). Ray runs the result through ``bash -c "exec <py_executable>
    <worker args>"``, so each part is quoted for the shell.
    """
    import shlex  # noqa: PLC0415 - only the plugins build a command; the launcher never does

    script = os.path.abspath(__file__)  # noqa: PTH100
    repair = shlex.join(on_damage) if on_damage else "-"
    return shlex.join([python, "-I", "-S", script, venv, python, repair])


def main(argv: Sequence[str]) -> int:
    """``VENV PROGRAM ON_DAMAGE ARGS...``: check ``VENV``, then become ``PROGRAM ARGS...``.

    ``ON_DAMAGE`` is ``-`` (wait for a changed copy to be rebuilt, then refuse
    it) or a shell-quoted command that a changed copy is handed to, with
    ``PROGRAM ARGS...`` appended.
    """
    if len(argv) < 3:  # noqa: PLR2004 - the venv, the program, what to do on damage
        sys.stderr.write("usage: stamps.py VENV PROGRAM ON_DAMAGE [ARGS...]\n")
        return 2
    venv, program, on_damage = argv[0], argv[1], argv[2]
    found = check(venv)
    if found is None:
        # Every setup of a copy leaves a manifest when the copy is sound (it hashes a copy
        # without one and writes it); none now: a check found damage and removed it.
        found = ["it has no manifest (removed by a check that found it damaged)"]
    if not found:
        return become(program, argv[3:])
    more = len(found) - _SHOWN
    shown = "; ".join(found[:_SHOWN]) + (f"; and {more} more" if more > 0 else "")
    if on_damage != "-":
        import shlex  # noqa: PLC0415 - only a changed copy pays for it

        sys.stderr.write(
            f"uv-envs: {venv} changed since its install: {shown}. Rebuilding it from its "
            "lock before the worker starts\n"
        )
        sys.stderr.flush()
        repair = shlex.split(on_damage)
        return become(repair[0], [*repair[1:], program, *argv[3:]])
    sys.stderr.write(
        f"uv-envs: not starting a worker from {venv}, changed since its install: {shown}. "
        f"Waiting up to {REBUILT_WITHIN} s for it to be rebuilt from its lock (the server's "
        "reconciling round, or the next setup of this runtime env on this node)\n"
    )
    sys.stderr.flush()
    import time  # noqa: PLC0415 - only a changed copy pays for it

    deadline = time.monotonic() + REBUILT_WITHIN
    while time.monotonic() < deadline:
        time.sleep(1)
        if check(venv) == []:  # a rebuild relinks the venv to a new one, with its manifest
            return become(program, argv[3:])
    sys.stderr.write(f"uv-envs: refusing to start a worker from {venv}: still changed\n")
    return DAMAGED


def become(program: str, args: Sequence[str]) -> NoReturn:
    """Replace this process with ``program``: the worker keeps the pid the Raylet started."""
    os.execv(program, [program, *args])  # noqa: S606 - the worker itself, no shell


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
