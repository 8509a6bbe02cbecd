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
see one wait until no such taker does (see :func:`_writer_waits`).

The registry holds its lock objects weakly, as virtualenv's ``lock_for_key``
does: a path's entry lives while some thread holds or waits for the lock and
goes when nobody does, so a long-running server that sees a new spec hash or
store entry with every request does not keep one object per path forever.
"""

from __future__ import annotations

import enum
import fcntl
import os
import struct
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import attrs
from filelock import FileLock, Timeout

from uv_envs._errors import EnvironmentBusy

# Waiting across processes sleeps until the holder lets go (see _on_release); when the
# lock is let go and taken again at once, the waiter backs off: first this long, then
# ever longer, up to MAX_POLL_INTERVAL. Polling every 10 ms cost each of 63 processes
# waiting out one install 134 ms of CPU (benchmarks/bench_waiters.py).
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
# This process's watcher thread (see _on_release) per lock file, by the event it sets,
# and a condition that tells when one ends: a watcher holds the file shared for an
# instant once the holder lets go, and that instant must not pass for a holder
# (see _take_now).
_watchers: dict[str, threading.Event] = {}
_watchers_changed = threading.Condition()
# How long a try that finds the lock taken waits for this process's watchers to end.
OWN_WATCHERS_WAIT = 0.2


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

    With ``announce``, shared takers hold back while this waits (see :func:`_announce`).
    """
    try:
        file.acquire(timeout=0)  # one try, before anything is announced
    except Timeout:
        pass
    else:
        return Wait.HELD
    if deadline <= time.monotonic():
        return Wait.TIMED_OUT
    with _announced(file.lock_file) if announce else nullcontext():
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
                released = _on_release(file.lock_file)
            woken = released.wait(remaining)
            # Before the lock is tried: a wait made moot ends without queueing for it.
            if unless is not None and unless():
                return Wait.MOOT
            if woken and _looks_free(file.lock_file):
                break
            # Let go and taken again at once (another waiter, or shared holders, whom
            # the kernel does not make us wait for): back off before watching again.
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * _BACKOFF, MAX_POLL_INTERVAL)


# struct flock as 64-bit Linux lays it out: type, whence, start, length, pid.
_FLOCK = struct.Struct("=hh4xqqi4x")


def _writers_file(path: str) -> str:
    return f"{path}.writers"


@contextmanager
def _announced(path: str) -> Iterator[None]:
    fd = _announce(path)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # the mark goes with the descriptor


def _announce(path: str) -> int | None:
    """Mark that an exclusive taker waits for ``path``'s lock until the descriptor is closed.

    The mark is a read lock on the ``.writers`` file beside the lock, of the
    open file description kind (Linux): any number of takers hold one at once,
    it conflicts between descriptors of one process as between processes,
    ``flock`` never sees it, and it goes when its holder dies. None where
    there is no such lock: shared takers then do not hold back.
    """
    setlk = getattr(fcntl, "F_OFD_SETLK", None)
    if setlk is None:
        return None
    try:
        fd = os.open(_writers_file(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, setlk, _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, 0, 1, 0))
    except OSError:
        os.close(fd)
        return None
    return fd


def _writer_waits(path: str) -> bool:
    """Whether an announced exclusive taker waits for ``path``'s lock; only asks, takes nothing."""
    getlk = getattr(fcntl, "F_OFD_GETLK", None)
    if getlk is None:
        return False
    try:
        fd = os.open(_writers_file(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # no taker ever announced itself here
    try:
        answer = fcntl.fcntl(fd, getlk, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0))
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(_FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)


def _on_release(path: str) -> threading.Event:
    """An event set once no process holds ``path``'s lock exclusively, or it cannot tell.

    A thread blocks in ``flock(LOCK_SH)``, which the kernel wakes the moment
    the exclusive holder lets go (or dies): a waiter costs no CPU however long
    the install it waits for takes, where a poll every 200 ms cost tens of
    wake-ups. The thread lets the shared lock go at once. One thread per
    lock file serves every waiter of this process (N requests waiting for one
    env cost one thread), and a waiter that gives up leaves it to the next:
    it ends when the holder lets go.
    """
    with _watchers_changed:
        watching = _watchers.get(path)
        if watching is not None:
            return watching
        released = _watchers[path] = threading.Event()

    def watch() -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError:
            pass  # no flock here: the waiter falls back to backing off
        finally:
            os.close(fd)

    def run() -> None:
        try:
            watch()
        finally:
            with _watchers_changed:
                del _watchers[path]  # before the event: a later waiter watches anew
                _watchers_changed.notify_all()
            released.set()

    try:
        threading.Thread(target=run, name="uv-envs-lock-watch", daemon=True).start()
    except RuntimeError:  # no thread to be had: the waiter falls back to backing off
        with _watchers_changed:
            del _watchers[path]
            _watchers_changed.notify_all()
        released.set()
    return released


def _looks_free(path: str) -> bool:
    """Whether no process holds ``path``'s lock right now; a hint, the real try decides.

    A few system calls, where a filelock try costs about ten times more CPU
    (path resolution, fork tracking, its registry): the cost of a poll when
    dozens of processes wait out one install. filelock locks with ``flock``
    (as ``compile_worker`` does), so a taken ``flock`` here means a holder.
    This thread holds the path's in-process lock, so no thread of this
    process holds the file. Anything unexpected says "free": filelock decides.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # releases a probe's flock with the descriptor
    return True


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
        writer_waits = _writer_waits(path)
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
        woken = _on_release(path).wait(max(0.0, deadline - time.monotonic()))


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
    path = lock.file.lock_file
    with _watchers_changed:
        if not _watchers_changed.wait_for(lambda: path not in _watchers, OWN_WATCHERS_WAIT):
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
