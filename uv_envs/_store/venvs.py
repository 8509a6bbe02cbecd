"""The content-addressed store of built venvs (the resolved locks are in :mod:`.resolutions`).

``store/<id>/.venv`` keeps a
venv built from a lock for one interpreter; ``<id>`` hashes the lock (without
the root project entry) and the interpreter, never the env's name, so every
env whose resolution and Python agree links the same bytes. Entries are
immutable once complete: files are read-only, directories stay writable so
Python can still write bytecode caches.

An entry's layout is spelled out here once: ``.venv/`` (linked from each
generation as ``gens/<N>/.venv``, see :func:`linked_entry`), ``refs/``,
``.complete`` (the build finished), ``.size`` (its bytes, see
:func:`recorded_size`), ``.compiled`` (every module has its ``.pyc``) and
``.damaged`` (a check found it damaged: see :mod:`uv_envs._store.damage`).
Each generation that links an entry leaves a reference file in
``store/<id>/refs/``, naming the generation directory. A reference whose
generation no longer links the entry is stale; an entry with no live
reference, that no process uses, is removed by :meth:`VenvStore.prune`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path

import attrs

from uv_envs._locks import locks
from uv_envs._store.layout import Layout
from uv_envs._store.resolutions import lock_packages_digest
from uv_envs._uv.orphans import stop_processes_in
from uv_envs._uv.python import Interpreter

# The files of a store entry (``store/<id>/``) besides its ``.venv/``.
REFS = "refs"  # one file per generation that links the entry
COMPLETE = ".complete"
SIZE = ".size"
# Written by _bytecode.worker once every module has a .pyc: while the entry is built when
# every one could be linked from the root's bytecode/, else by the background compile.
COMPILED = ".compiled"
# Written by a check that found the entry's venv damaged (_store.damage).
DAMAGED = ".damaged"


def store_id(
    packages_digest: str,
    interpreter: Interpreter,
    *,
    compile_bytecode: bool,
    ray_link: Mapping[str, str] | None = None,
) -> str:
    """The store id of the venv a set of locked packages gives on an interpreter.

    Every input is explicit and nothing is read from disk, so the warm path
    derives the id from what it recorded: this is the one place that decides
    which venvs are the same, and anything else that shapes a venv joins the
    payload here. ``ray_link`` is what linking the cluster's Ray adds to a
    venv (None: no link), so a venv linked to one Ray is never handed to another.
    """
    payload: dict[str, object] = {
        "packages": packages_digest,
        "python": [str(interpreter.path), interpreter.version],
        "compile_bytecode": compile_bytecode,
    }
    if ray_link is not None:
        payload["ray_link"] = dict(ray_link)
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()[:32]


def venv_id(
    lock_text: str,
    interpreter: Interpreter,
    *,
    compile_bytecode: bool,
    ray_link: Mapping[str, str] | None = None,
) -> str:
    """The store id of the venv a lock gives on an interpreter (parses the lock)."""
    return store_id(
        lock_packages_digest(lock_text),
        interpreter,
        compile_bytecode=compile_bytecode,
        ray_link=ray_link,
    )


@attrs.define
class VenvStore:
    """Built venvs shared by every generation whose lock and interpreter agree."""

    layout: Layout
    lock_timeout: float

    @property
    def directory(self) -> Path:
        return self.layout.store_dir

    def entry(self, entry_id: str) -> Path:
        return self.layout.store_entry(entry_id)

    def _lock(self, entry_id: str) -> Path:
        return self.layout.store_lock(entry_id)

    def compile_lock(self, entry: Path) -> Path:
        """The lock the background compiler holds while it writes into ``entry``."""
        return self.layout.compile_lock(entry.name)

    def link(self, gen_dir: Path, entry_id: str, build: Callable[[Path], None]) -> bool:
        """Make ``gen_dir/.venv`` the entry's venv, building it first if needed.

        ``build`` is called with the venv path to create when the entry is
        missing or incomplete. Returns whether it was built.
        """
        built = False
        with locks.hold(self._lock(entry_id), timeout=self.lock_timeout, what=f"store {entry_id}"):
            entry = self._usable_entry(entry_id)
            if not (entry / COMPLETE).is_file():
                if entry.exists():
                    # Left by a builder that died; its uv may still be writing.
                    stop_processes_in(entry)
                    _remove_tree(entry)
                entry.mkdir(parents=True)
                try:
                    build(entry / ".venv")
                    # Beside the venv: its digest and manifest, a few KiB for a large env.
                    beside = sum(p.stat().st_size for p in entry.iterdir() if p.is_file())
                    size = _seal(str(entry / ".venv")) + beside
                    (entry / SIZE).write_text(str(size))
                    (entry / COMPLETE).write_text(str(time.time()))
                except BaseException:
                    _remove_tree(entry)
                    raise
                built = True
            refs = entry / REFS
            refs.mkdir(exist_ok=True)
            (refs / _ref_name(gen_dir)).write_text(str(gen_dir))
            os.symlink(entry / ".venv", gen_dir / ".venv")
        return built

    def _usable_entry(self, entry_id: str) -> Path:
        """The entry to link for an id: the first one not marked damaged.

        A damaged entry cannot be rebuilt in place (other generations may be
        running from it), so a replacement is built beside it as ``<id>.1``,
        ``<id>.2`` ...; the damaged one goes once nothing links it.
        """
        for attempt in range(1000):
            entry = self.entry(entry_id if attempt == 0 else f"{entry_id}.{attempt}")
            if not (entry / DAMAGED).exists():
                return entry
        msg = f"store entry {entry_id} has been replaced too often"
        raise RuntimeError(msg)

    def sizes(self) -> dict[Path, int]:
        """Bytes used by each complete entry, as recorded when it was built."""
        result: dict[Path, int] = {}
        for entry in self._entries():
            size = recorded_size(entry)
            result[entry] = tree_size(entry) if size is None else size
        return result

    def recorded_totals(self) -> tuple[int, int]:
        """Complete entries and their bytes as recorded when built: no tree walk, for metrics."""
        entries = total = 0
        for entry in self._entries():
            if (entry / COMPLETE).is_file():
                entries += 1
                total += recorded_size(entry) or 0
        return entries, total

    def release(self, gen_dir: Path) -> None:
        """Drop the reference of ``gen_dir`` (before it is deleted)."""
        try:
            target = Path(os.readlink(gen_dir / ".venv"))
        except OSError:
            return
        with contextlib.suppress(OSError):
            (target.parent / REFS / _ref_name(gen_dir)).unlink()

    def prune(self, keep: Collection[str] = ()) -> tuple[int, int]:
        """Remove entries nothing links; those in ``keep`` (used by a process) are only counted."""
        removed = kept = 0
        for entry in self._entries():
            lock = self._lock(entry.name)
            if not locks.try_acquire(lock):
                continue  # being built or linked right now
            try:
                if any(self._live_refs(entry)):
                    continue
                if entry.name in keep:  # a later prune takes it once no process uses it
                    kept += 1
                    continue
                # A compiler writing .pyc files would race the removal; the next prune takes it.
                compiling = self.compile_lock(entry)
                if not locks.try_acquire(compiling):
                    continue
                try:
                    _remove_tree(entry)
                finally:
                    locks.release(compiling)
                removed += 1
            finally:
                locks.release(lock)
        return removed, kept

    def remove_incomplete(self) -> int:
        """Remove entries whose build died (no ``.complete``, lock free); return how many."""
        removed = 0
        for entry in self._entries():
            if (entry / COMPLETE).is_file():
                continue
            lock = self._lock(entry.name)
            if not locks.try_acquire(lock):
                continue  # being built right now
            try:
                if not (entry / COMPLETE).is_file():
                    stop_processes_in(entry)
                    _remove_tree(entry)
                    removed += 1
            finally:
                locks.release(lock)
        return removed

    def latest_sealed(self, excluding: Path, count: int = 1) -> list[Path]:
        """The venvs of the ``count`` complete, undamaged entries sealed last, newest first.

        What a new entry's Ray check can carry over from (``RayLinker.link``'s
        ``bases``): a sealed venv never changes, and the newest ones are the likeliest
        to differ from a new spec in few distributions. ``excluding``: the new entry.
        """
        sealed = []
        for entry in self._entries():
            if entry == excluding or (entry / DAMAGED).exists():
                continue
            with contextlib.suppress(OSError):
                sealed.append(((entry / COMPLETE).stat().st_mtime, entry / ".venv"))
        return [venv for _, venv in sorted(sealed, reverse=True)[:count]]

    def _entries(self) -> Iterator[Path]:
        with contextlib.suppress(FileNotFoundError):
            yield from (p for p in self.directory.iterdir() if p.is_dir())

    @staticmethod
    def _live_refs(entry: Path) -> Iterator[Path]:
        refs = entry / REFS
        with contextlib.suppress(FileNotFoundError):
            for ref in list(refs.iterdir()):
                gen_dir = Path(ref.read_text())
                try:
                    live = Path(os.readlink(gen_dir / ".venv")) == entry / ".venv"
                except OSError:
                    live = False
                if live:
                    yield ref
                else:
                    ref.unlink(missing_ok=True)


def linked_entry(store_dir: Path, gen_dir: Path) -> Path | None:
    """The store entry ``gen_dir/.venv`` links, or ``None`` for a private venv."""
    try:
        target = Path(os.readlink(gen_dir / ".venv"))
    except OSError:
        return None
    if target.name == ".venv" and target.parent.parent == store_dir:
        return target.parent
    return None


def recorded_size(entry: Path) -> int | None:
    """The bytes of ``entry`` as recorded when it was built (``None``: not recorded)."""
    try:
        return int((entry / SIZE).read_text())
    except (OSError, ValueError):
        return None


def tree_size(tree: Path) -> int:
    """Bytes of the regular files under ``tree``, links not followed."""
    total = 0
    for directory, _, files in os.walk(tree):
        for name in files:
            with contextlib.suppress(OSError):
                info = (Path(directory) / name).lstat()
                if stat.S_ISREG(info.st_mode):
                    total += info.st_size
    return total


def _ref_name(gen_dir: Path) -> str:
    return hashlib.sha256(str(gen_dir).encode()).hexdigest()[:32]


_WRITE_BITS = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH


def _seal(tree: str) -> int:
    """Make the files under ``tree`` read-only and return their total size, in one pass.

    Directories stay writable so Python can add bytecode caches. (Files uv
    hard-linked from its cache share their mode with the cache's copy.)
    """
    total = 0
    pending = [tree]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    total += info.st_size
                    if info.st_mode & _WRITE_BITS:
                        os.chmod(entry.path, info.st_mode & ~_WRITE_BITS & 0o7777)  # noqa: PTH101
    return total


def _remove_tree(tree: Path) -> None:
    shutil.rmtree(tree, ignore_errors=True)


@contextlib.contextmanager
def install_slot(layout: Layout, slots: int) -> Iterator[None]:
    """Hold one of ``slots`` install slots of the root; wait (never fail) while all are taken."""
    held: Path | None = None
    while held is None:
        for number in range(max(1, slots)):
            path = layout.install_slot(number)
            if locks.try_acquire(path):
                held = path
                break
        else:
            time.sleep(0.02)
    try:
        yield
    finally:
        locks.release(held)
