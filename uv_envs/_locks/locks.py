"""One cross-process lock per environment, reentrant within a thread.

Locks are ``filelock.FileLock`` objects on files under ``<root>/locks``; the
operating system releases them when the holding process dies, which is what
crash recovery relies on: an env that says CREATING while its lock is free was
left by a dead process. As in virtualenv's ``util/lock.py``, one lock object
per path is shared by all threads of a process (filelock keeps the holder
count per thread), so threads serialize with each other and with other
processes, and a thread may take the same lock again.

An env's lock is also taken shared (:func:`shared`), to hand a READY env out
beside other hand-outs. ``flock`` prefers nobody, so a steady stream of
hand-outs could keep a delete or a change waiting until it timed out; a taker
that announces itself (``hold(..., announce=True)``) marks, while it waits, a
read lock on the lock's ``.writers`` file beside it, and shared takers that
see one wait until no such taker does (see :mod:`uv_envs._locks.watch`).

The registry holds its lock objects weakly, as virtualenv's ``lock_for_key``
does: a path's entry lives while some thread holds or waits for the lock and
goes when nobody does, so a long-running server that sees a new spec hash or
store entry with every request does not keep one object per path forever.
"""

from __future__ import annotations

import enum
import fcntl
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import attrs
from filelock import FileLock, Timeout

from uv_envs._errors import EnvironmentBusy
from uv_envs._locks import watch as lock_watch

# Waiting across processes sleeps until the holder lets go (lock_watch.on_release); when
# the lock is let go and taken again at once, the waiter backs off: first this long, then
# ever longer, up to MAX_POLL_INTERVAL. Polling every 10 ms cost each of 63 processes
# waiting out one install 134 ms of CPU (benchmarks/bench_waiters.py).
POLL_INTERVAL = 0.01
MAX_POLL_INTERVAL = 0.2
_BACKOFF = 1.5
# How long a try that finds the lock taken waits for this process's watcher to end.
OWN_WATCHERS_WAIT = 0.2


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


class Wait(enum.Enum):
    """How a wait for a lock ended."""

    HELD = "held"
    TIMED_OUT = "timed out"
    MOOT = "moot"  # the caller's ``unless`` said it no longer needs the lock


def _acquire(
    lock: _PathLock,
    timeout: float,
    unless: Callable[[], bool] | None = None,
    *,
    announce: bool = False,
) -> Wait:
    # Threads of this process wait on the RLock, woken the moment it is free
    # (filelock alone would poll); only one of them at a time polls the file.
    deadline = time.monotonic() + timeout
    if not (
        lock.threads.acquire(timeout=timeout)
        if timeout > 0
        else lock.threads.acquire(blocking=False)
    ):
        return Wait.TIMED_OUT
    wait = _poll(lock.file, deadline, unless, announce=announce)
    if wait is not Wait.HELD:
        lock.threads.release()
    return wait


def _poll(
    file: FileLock, deadline: float, unless: Callable[[], bool] | None, *, announce: bool
) -> Wait:
    """Take the file lock; while another process holds it, sleep until it lets go.

    With ``announce``, shared takers hold back while this waits (``lock_watch.announce``).
    """
    try:
        file.acquire(timeout=0)  # one try, before anything is announced
    except Timeout:
        pass
    else:
        return Wait.HELD
    if deadline <= time.monotonic():
        return Wait.TIMED_OUT
    with lock_watch.announced(file.lock_file) if announce else nullcontext():
        return _wait_for(file, deadline, unless)


def _wait_for(file: FileLock, deadline: float, unless: Callable[[], bool] | None) -> Wait:
    delay = POLL_INTERVAL
    released: threading.Event | None = None
    while True:
        try:
            file.acquire(timeout=0)  # one try
        except Timeout:
            pass
        else:
            return Wait.HELD
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Wait.TIMED_OUT
            if released is None or released.is_set():
                released = lock_watch.on_release(file.lock_file)
            woken = released.wait(remaining)
            # Before the lock is tried: a wait made moot ends without queueing for it.
            if unless is not None and unless():
                return Wait.MOOT
            if woken and lock_watch.looks_free(file.lock_file):
                break
            # Let go and taken again at once (another waiter, or shared holders, whom
            # the kernel does not make us wait for): back off before watching again.
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * _BACKOFF, MAX_POLL_INTERVAL)


def _release(lock: _PathLock) -> None:
    lock.file.release()
    lock.threads.release()


@contextmanager
def hold(
    path: Path,
    *,
    timeout: float,
    what: str,
    unless: Callable[[], bool] | None = None,
    announce: bool = False,
) -> Iterator[bool]:
    """Hold the lock at ``path``; after ``timeout`` s raise :class:`EnvironmentBusy`.

    With ``unless``, asked each time another process's hold ends while this
    waits: once it answers True the wait ends and the block runs without the
    lock (yielding False; True when the lock is held). With ``announce``,
    :func:`shared` takers hold back while this waits, so they cannot keep it
    waiting for ever (for a lock that is also taken shared).
    """
    lock = _lock_for(path)
    wait = _acquire(lock, timeout, unless, announce=announce)
    if wait is Wait.TIMED_OUT:
        raise EnvironmentBusy(
            f"environment {what} is busy: its lock was not free within {timeout} s"
        )
    if wait is Wait.MOOT:
        yield False
        return
    try:
        yield True
    finally:
        _release(lock)


@contextmanager
def shared(path: Path, *, timeout: float, what: str) -> Iterator[bool]:
    """Hold the lock at ``path`` shared: beside other shared holders, never beside :func:`hold`'s.

    For what only reads an env and must not overlap a change of it (a READY
    env handed out while no delete or rebuild holds it): any number of
    processes hold it at once, so they do not queue. Waits as :func:`hold`
    does (polls backing off; :class:`EnvironmentBusy` after ``timeout`` s),
    and, before taking it, while a :func:`hold` that announced itself waits:
    that taker goes first.
    Yields False, holding nothing, where a shared hold cannot be had: this
    thread holds the lock itself (a shared hold would wait for it forever), or
    the file system has no ``flock``; the caller then takes :func:`hold`.
    """
    with _registry_lock:
        lock = _registry.get(path)
    if lock is not None and lock.file.is_locked:  # this thread's own hold
        yield False
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        taken = _flock_shared(fd, str(path), time.monotonic() + timeout)
    except OSError:
        taken = None  # no flock here
    except BaseException:
        os.close(fd)
        raise
    if not taken:
        os.close(fd)
        if taken is None:
            yield False
            return
        raise EnvironmentBusy(
            f"environment {what} is busy: its lock was not free within {timeout} s"
        )
    try:
        yield True
    finally:
        os.close(fd)  # releases the flock with the descriptor


def _flock_shared(fd: int, path: str, deadline: float) -> bool:
    """Take a shared ``flock`` on ``fd`` before ``deadline``; raises OSError where there is none."""
    delay = POLL_INTERVAL
    woken = False
    while True:
        writer_waits = lock_watch.writer_waits(path)
        if not writer_waits:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        # A writer waits (it goes first: nothing wakes us when it is done, so back
        # off), or the lock was let go and taken again at once.
        if writer_waits or woken:
            time.sleep(min(delay, remaining))
            delay = min(delay * _BACKOFF, MAX_POLL_INTERVAL)
            if writer_waits:
                continue
        woken = lock_watch.on_release(path).wait(max(0.0, deadline - time.monotonic()))


def _take_now(lock: _PathLock) -> bool:
    """Take the lock if no thread or process holds it, without waiting for a holder.

    A watcher of this process (a waiter's, maybe one that gave up) holds the
    file shared from the moment the holder lets go until it runs again, which
    on a busy machine can be a while after (it needs the GIL to close its
    descriptor): that is no holder, so a try that finds the file taken while
    this process watches it waits a moment for the watchers to end and tries
    once more. A real holder keeps them blocked, and the answer stays no.
    """
    if _acquire(lock, 0) is Wait.HELD:
        return True
    if not lock_watch.watchers_settle(lock.file.lock_file, OWN_WATCHERS_WAIT):
        return False
    return _acquire(lock, 0) is Wait.HELD


def is_free(path: Path) -> bool:
    """Whether no thread or process holds the lock (this thread's own hold counts as held)."""
    lock = _lock_for(path)
    if lock.file.is_locked:
        return False
    if not _take_now(lock):
        return False
    _release(lock)
    return True


def try_acquire(path: Path) -> bool:
    """Take the lock at ``path`` if it is free right now; pair with :func:`release`."""
    lock = _lock_for(path)
    if not _take_now(lock):
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
