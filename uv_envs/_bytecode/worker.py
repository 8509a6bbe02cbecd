"""Compile a venv's modules to bytecode, once, in the venv's own interpreter.

Started by :mod:`uv_envs._bytecode.compiler` as
``<venv>/bin/python -I -S worker.py <job as JSON>``, in its own
session, so it outlives a short-lived parent (the CLI); or, to link a store
entry being built, as ``<base python> -I -S worker.py -`` before the venv
exists (:mod:`.early`), reading its job from stdin. It uses only the
standard library and runs on any Python 3.8+: the venv has neither uv-envs nor
filelock. The locks it takes are ``flock(2)`` locks on the same files
filelock locks (filelock's Unix lock is ``flock`` on a file it never deletes),
so it excludes, and is excluded by, uv-envs processes:

* ``lock`` (``locks/compile-<entry>.lock``), held throughout and taken without
  waiting: a second compiler of the same venv gives up at once, and
  ``VenvStore.prune`` skips an entry being compiled. With the ``marker``
  (written last, atomically) this compiles an entry at most once across
  processes.
* one install slot (``locks/install-slot-<n>.lock``, the install cap), held
  for one batch of files at a time (``batch_seconds``), so a create waiting
  for a slot waits for one batch at most; after each batch it pauses longer
  than a waiting create polls, so that create gets the slot first.

Each file is compiled with :func:`py_compile.compile`, which writes the
``.pyc`` to a temporary file and renames it into place: a process importing
from the venv meanwhile sees no ``.pyc`` or a whole one. A ``.pyc`` already
up to date (a compile that died half way) is left alone; a file that does not
compile is skipped, as ``compileall`` does. The new files are made read-only
like the rest of a sealed store entry, and ``size_file`` grows by their size.

With ``shared`` (the root's ``bytecode/``) each ``.pyc`` is kept there once,
by its source's SHA-256, and hard-linked into entries (:func:`link_venv` runs
while an entry is built). They are unchecked hash-based (PEP 552): sources in
an entry never change, and imports set ``co_filename`` to the importing path.
Linking trusts a source's SHA-256 in ``RECORD``, written with it moments before
into an entry nobody else writes: a lying one only picks which shared ``.pyc``
(compiled from real bytes) its own wheel's module loads.

It writes no temporary files of its own (see :func:`_write`), so a worker
killed half way leaves nothing to clean. It prints the outcome and exits 0
whatever happened: a compile that did not finish is done again by the next
create that links the entry.
"""

# String paths and os.walk throughout: thousands of files, no pathlib objects needed.
# ruff: noqa: PTH101, PTH103, PTH110, PTH112, PTH116, PTH118, PTH120, PTH123, PTH207, PTH208

from __future__ import annotations

import base64
import contextlib
import csv
import fcntl
import glob
import hashlib
import importlib.util
import json
import os
import py_compile
import stat
import string
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

# Longer than uv-envs' install-slot poll (0.02 s): a waiting create takes the freed slot first.
_YIELD_SECONDS = 0.03
_SLOT_POLL_SECONDS = 0.02
_HEADER_BYTES = 16
_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
_KEY_LENGTH = 43  # a SHA-256 in unpadded urlsafe base64
_KEY_CHARS = frozenset(string.ascii_letters + string.digits + "-_")

COMPILED = "compiled"
ALREADY_COMPILED = "already-compiled"
BUSY = "busy"
GONE = "gone"
LINKED = "linked"  # link_venv: followed by the modules that have a .pyc and those that do not


def _try_lock(path: str) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _take_slot(locks_dir: str, slots: int, still_wanted: Callable[[], bool]) -> int | None:
    """Hold a free install slot, waiting while all are taken; None once ``still_wanted`` fails."""
    while still_wanted():
        for number in range(max(1, slots)):
            fd = _try_lock(os.path.join(locks_dir, f"install-slot-{number}.lock"))
            if fd is not None:
                return fd
        time.sleep(_SLOT_POLL_SECONDS)
    return None


def sources(venv: str) -> list[str]:
    """Every ``.py`` file under the venv's site-packages, symlinked folders not followed."""
    found: list[str] = []
    lib = os.path.join(venv, "lib")
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(lib)):
            site = os.path.join(lib, name, "site-packages")
            if not name.startswith("python") or not os.path.isdir(site):
                continue
            for directory, folders, files in os.walk(site):
                folders[:] = [f for f in folders if f != "__pycache__"]
                found.extend(os.path.join(directory, f) for f in files if f.endswith(".py"))
    return found


def _up_to_date(cfile: str, source: os.stat_result) -> bool:
    """Whether ``cfile`` is a ``.pyc`` of this interpreter for ``source`` (hash-based: ours)."""
    try:
        with open(cfile, "rb") as handle:
            header = handle.read(_HEADER_BYTES)
    except OSError:
        return False
    flags = int.from_bytes(header[4:8], "little")
    stamp = int(source.st_mtime) & 0xFFFFFFFF, source.st_size & 0xFFFFFFFF
    fields = int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")
    valid = flags & 1 == 1 or (flags == 0 and fields == stamp)
    return len(header) == _HEADER_BYTES and header[:4] == importlib.util.MAGIC_NUMBER and valid


def digest(path: str) -> str:
    """The SHA-256 of a file's bytes as a ``RECORD`` spells it (urlsafe base64, unpadded)."""
    with open(path, "rb") as handle:
        raw = hashlib.sha256(handle.read()).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def stored(shared: str, key: str) -> str:
    """Where the shared ``.pyc`` of the source whose digest is ``key`` lives, for us."""
    tag = f"{sys.implementation.cache_tag}-{importlib.util.MAGIC_NUMBER.hex()}"
    return os.path.join(shared, tag, key[:2], key + ".pyc")


def _link(source: str, target: str, made: set[str] | None = None) -> bool:
    """Hard-link ``source`` as ``target``, whole or not at all; ``made``: folders made."""
    folder = os.path.dirname(target)
    try:
        if made is None or folder not in made:
            os.makedirs(folder, exist_ok=True)
            if made is not None:
                made.add(folder)
        os.link(source, target)
    except FileExistsError:
        return True
    except OSError:
        return False
    return True


def _compile_shared(path: str, cfile: str, shared: str) -> None:
    """Compile ``path`` into the shared folder unless there already, and link it as ``cfile``."""
    keep = stored(shared, digest(path))
    if not os.path.exists(keep):
        os.makedirs(os.path.dirname(keep), exist_ok=True)
        py_compile.compile(
            path,
            cfile=keep,
            doraise=True,
            invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
        )
    if not _link(keep, cfile):  # a cleanup took it meanwhile, or another file system
        py_compile.compile(path, cfile=cfile, doraise=True)


def _compile(path: str, shared: str | None = None) -> int:
    """Compile one file; the bytes written (0 if it was up to date or does not compile)."""
    try:
        cfile = importlib.util.cache_from_source(path)
        if _up_to_date(cfile, os.stat(path)):
            return 0
        if shared is not None:
            _compile_shared(path, cfile, shared)
        else:
            py_compile.compile(
                path,
                cfile=cfile,
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP,
            )
        info = os.stat(cfile)
        if info.st_mode & _WRITE_BITS:
            os.chmod(cfile, info.st_mode & ~_WRITE_BITS & 0o7777)
    except (py_compile.PyCompileError, SyntaxError, ValueError, OSError):
        return 0
    return info.st_size


def _recorded(venv: str) -> dict[str, str]:
    """The ``RECORD`` digest of each installed ``.py`` file, by path."""
    found: dict[str, str] = {}
    for record in glob.glob(os.path.join(venv, "lib", "python*", "site-packages", "*", "RECORD")):
        site = os.path.dirname(os.path.dirname(record))
        with contextlib.suppress(OSError), open(record, newline="") as handle:
            for row in filter(None, csv.reader(handle)):  # not blank lines
                key = row[1][7:] if len(row) > 1 and row[1][:7] == "sha256=" else ""
                # A digest names a file of the shared folder: never a path, whatever RECORD says.
                if row[0].endswith(".py") and len(key) == _KEY_LENGTH and set(key) <= _KEY_CHARS:
                    found[os.path.normpath(os.path.join(site, row[0]))] = key
    return found


def link_venv(job: Mapping[str, object]) -> str:
    """Link the shared ``.pyc`` of each module of the job's venv that has one; the outcome.

    Run while the entry is built (no other worker writes into it). The rest is
    compiled here if at most ``inline_files`` files, else left to the background
    worker; the ``marker`` is written when every module has its ``.pyc``.
    """
    shared = str(job["shared"])
    files = sources(str(job["venv"]))
    keys = _recorded(str(job["venv"]))
    missing: list[str] = []
    made: set[str] = set()
    for path in files:
        with contextlib.suppress(OSError):
            key = keys.get(path) or digest(path)
            if _link(stored(shared, key), importlib.util.cache_from_source(path), made):
                continue
        missing.append(path)
    if len(missing) <= int(str(job.get("inline_files", 0))):
        for path in missing:
            _compile(path, shared)
        missing = []
    if not missing:
        tag = sys.implementation.cache_tag
        _write(str(job["marker"]), json.dumps({"files": len(files), "cache_tag": tag}))
    return f"{LINKED} {len(files) - len(missing)} {len(missing)}"


def _write(path: str, text: str) -> None:
    """Write a small file in place, with no temporary file left behind if we are killed.

    Both files written this way are safe half written: the marker means
    "done" by existing (it is written after the last ``.pyc``), and an
    unreadable ``.size`` makes ``VenvStore.sizes`` measure the entry instead.
    """
    with open(path, "w") as handle:
        handle.write(text)


def _add_to_size(size_file: str, added: int) -> None:
    with contextlib.suppress(OSError, ValueError):
        with open(size_file) as handle:
            total = int(handle.read().strip())
        _write(size_file, str(total + added))


def _compile_in_batches(
    files: list[str],
    job: Mapping[str, object],
    still_wanted: Callable[[], bool],
    after_batch: Callable[[int], None] | None,
) -> int | None:
    """Compile ``files``, one install slot held per batch; bytes written, None if abandoned."""
    locks_dir, slots = str(job["locks_dir"]), int(str(job["slots"]))
    batch_seconds = float(str(job.get("batch_seconds", 0.1)))
    batch_files = int(str(job.get("batch_files", 0)))
    shared = None if job.get("shared") is None else str(job["shared"])
    written = done = batches = 0
    while done < len(files):
        slot = _take_slot(locks_dir, slots, still_wanted)
        if slot is None:
            return None
        try:
            started = time.monotonic()
            while done < len(files) and time.monotonic() - started < batch_seconds:
                written += _compile(files[done], shared)
                done += 1
                if batch_files and done % batch_files == 0:
                    break
        finally:
            _unlock(slot)
        batches += 1
        if after_batch is not None:
            after_batch(batches)
        if done < len(files):
            time.sleep(_YIELD_SECONDS)
    return written


def compile_venv(
    job: Mapping[str, object], after_batch: Callable[[int], None] | None = None
) -> str:
    """Compile the job's venv unless done or busy; return the outcome.

    ``job`` keys: ``venv``, ``marker``, ``lock``, ``locks_dir``, ``slots``,
    ``complete`` (a file whose absence means the venv is going away),
    ``size_file`` (or None), ``batch_seconds``, ``batch_files`` (0: no limit),
    ``shared`` (the root's shared ``.pyc`` folder, or None).
    ``after_batch`` is called with the number of batches done (tests use it).
    """
    marker, complete = str(job["marker"]), job.get("complete")

    def still_wanted() -> bool:
        return complete is None or os.path.exists(str(complete))

    lock = _try_lock(str(job["lock"]))
    if lock is None:
        return BUSY if os.path.isdir(str(job["locks_dir"])) else GONE
    try:
        if os.path.exists(marker):
            return ALREADY_COMPILED
        # Shallow modules first (package __init__s, top-level modules): what a process
        # importing meanwhile is likeliest to need; deep ones (plugins, lexers) last.
        files = sorted(sources(str(job["venv"])), key=lambda path: path.count(os.sep))
        written = _compile_in_batches(files, job, still_wanted, after_batch)
        if written is None or not still_wanted():
            return GONE
        size_file = job.get("size_file")
        if size_file is not None:
            _add_to_size(str(size_file), written)
        tag = sys.implementation.cache_tag
        _write(marker, json.dumps({"files": len(files), "bytes": written, "cache_tag": tag}))
        return COMPILED
    finally:
        _unlock(lock)


def _main(argv: list[str]) -> int:
    try:
        text = sys.stdin.readline() if argv[1] == "-" else argv[1]  # "-": see .early
        if not text.strip():
            return 0  # started early, and the build stopped before sending a job
        job = json.loads(text)
        if job.get("link"):  # a create waits for this one
            outcome = link_venv(job)
        else:
            with contextlib.suppress(OSError):
                os.nice(10)  # background work: creates come first
            outcome = compile_venv(job)
    except Exception as exc:  # noqa: BLE001 - nobody waits for us; say what happened and stop
        outcome = f"failed: {type(exc).__name__}: {exc}"
    with contextlib.suppress(OSError, ValueError):
        print(outcome, flush=True)  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
