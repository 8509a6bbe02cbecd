"""One cross-process lock per environment, reentrant within a thread.

Locks are ``filelock.FileLock`` objects on files under ``<root>/locks``; the
operating system releases them when the holding process dies, which is what
crash recovery relies on: an env that says CREATING while its lock is free was
left by a dead process. As in virtualenv's ``util/lock.py``, one lock object
per path is shared by all threads of a process (filelock keeps the holder
count per thread), so threads serialize with each other and with other
processes, and a thread may take the same lock again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ._errors import EnvironmentBusy

_registry: dict[Path, FileLock] = {}
_registry_lock = threading.Lock()


def _lock_for(path: Path) -> FileLock:
    with _registry_lock:
        lock = _registry.get(path)
        if lock is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(path, thread_local=True)
            _registry[path] = lock
        return lock


@contextmanager
def hold(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold the lock at ``path``; after ``timeout`` s raise :class:`EnvironmentBusy`."""
    lock = _lock_for(path)
    try:
        lock.acquire(timeout=timeout)
    except Timeout as exc:
        raise EnvironmentBusy(
            f"environment {what} is busy: its lock was not free within {timeout} s"
        ) from exc
    try:
        yield
    finally:
        lock.release()


def is_free(path: Path) -> bool:
    """Whether no thread or process holds the lock (this thread's own hold counts as held)."""
    lock = _lock_for(path)
    if lock.is_locked:
        return False
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return False
    lock.release()
    return True


def try_acquire(path: Path) -> bool:
    """Take the lock at ``path`` if it is free right now; pair with :func:`release`."""
    try:
        _lock_for(path).acquire(timeout=0)
    except Timeout:
        return False
    return True


def release(path: Path) -> None:
    """Release a lock taken with :func:`try_acquire`."""
    _lock_for(path).release()


def forget(path: Path) -> None:
    """Drop the lock object of a path that will not be locked again (a finished lease)."""
    with _registry_lock:
        _registry.pop(path, None)
