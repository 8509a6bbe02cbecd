"""One cross-process lock per environment, reentrant within a thread.

Locks are ``filelock.FileLock`` objects on files under ``<root>/locks``; the
operating system releases them when the holding process dies, which is what
crash recovery relies on: an env that says CREATING while its lock is free was
left by a dead process. As in virtualenv's ``util/lock.py``, one lock object
per path is shared by all threads of a process (filelock keeps the holder
count per thread), so threads serialize with each other and with other
processes, and a thread may take the same lock again.

The registry holds its lock objects weakly, as virtualenv's ``lock_for_key``
does: a path's entry lives while some thread holds or waits for the lock and
goes when nobody does, so a long-running server that sees a new spec hash or
store entry with every request does not keep one object per path forever.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
from filelock import FileLock, Timeout

from uv_envs._errors import EnvironmentBusy

# Waiting across processes polls the lock file: first this often, then ever less
# often, up to MAX_POLL_INTERVAL. A short wait stays short, and the 63 processes
# waiting out one multi-second install cost a few ms of CPU each, not one poll
# every 10 ms (measured: 134 ms of CPU per waiter, benchmarks/bench_waiters.py).
POLL_INTERVAL = 0.01
MAX_POLL_INTERVAL = 0.2
_BACKOFF = 1.5


@attrs.frozen
class _PathLock:
    """A path's file lock, and an in-process lock that threads queue on without polling."""

    file: FileLock
    threads: threading.RLock


# Holders keep their lock object alive: hold() in its frame, try_acquire() in _pinned.
_registry: weakref.WeakValueDictionary[Path, _PathLock] = weakref.WeakValueDictionary()
# Locks taken by try_acquire() and not yet released, with how many times (reentrant).
_pinned: dict[Path, tuple[_PathLock, int]] = {}
_registry_lock = threading.Lock()


def _lock_for(path: Path) -> _PathLock:
    with _registry_lock:
        lock = _registry.get(path)
        if lock is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = _PathLock(FileLock(path, thread_local=True), threading.RLock())
            _registry[path] = lock
        return lock


def registry_size() -> int:
    """How many lock objects this process keeps: those held or waited for, and no others."""
    with _registry_lock:
        return len(_registry)


def _acquire(lock: _PathLock, timeout: float) -> bool:
    # Threads of this process wait on the RLock, woken the moment it is free
    # (filelock alone would poll); only one of them at a time polls the file.
    deadline = time.monotonic() + timeout
    if not (
        lock.threads.acquire(timeout=timeout)
        if timeout > 0
        else lock.threads.acquire(blocking=False)
    ):
        return False
    delay = POLL_INTERVAL
    while True:
        try:
            lock.file.acquire(timeout=0)  # one try
        except Timeout:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                lock.threads.release()
                return False
            time.sleep(min(delay, remaining))
            delay = min(delay * _BACKOFF, MAX_POLL_INTERVAL)
        else:
            return True


def _release(lock: _PathLock) -> None:
    lock.file.release()
    lock.threads.release()


@contextmanager
def hold(path: Path, *, timeout: float, what: str) -> Iterator[None]:
    """Hold the lock at ``path``; after ``timeout`` s raise :class:`EnvironmentBusy`."""
    lock = _lock_for(path)
    if not _acquire(lock, timeout):
        raise EnvironmentBusy(
            f"environment {what} is busy: its lock was not free within {timeout} s"
        )
    try:
        yield
    finally:
        _release(lock)


def is_free(path: Path) -> bool:
    """Whether no thread or process holds the lock (this thread's own hold counts as held)."""
    lock = _lock_for(path)
    if lock.file.is_locked:
        return False
    if not _acquire(lock, 0):
        return False
    _release(lock)
    return True


def try_acquire(path: Path) -> bool:
    """Take the lock at ``path`` if it is free right now; pair with :func:`release`."""
    lock = _lock_for(path)
    if not _acquire(lock, 0):
        return False
    with _registry_lock:
        # Nothing else refers to the object while it is held: keep it until release.
        _, count = _pinned.get(path, (lock, 0))
        _pinned[path] = (lock, count + 1)
    return True


def release(path: Path) -> None:
    """Release a lock taken with :func:`try_acquire`."""
    with _registry_lock:
        lock, count = _pinned[path]
        if count > 1:
            _pinned[path] = (lock, count - 1)
        else:
            del _pinned[path]
    _release(lock)


def forget(path: Path) -> None:
    """Drop the lock object of a path that will not be locked again (a finished lease)."""
    with _registry_lock:
        _registry.pop(path, None)
