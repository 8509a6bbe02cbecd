"""Watching an ``flock`` without taking it, and marking a wait for one.

What :mod:`uv_envs._locks.locks` waits with, all on the kernel's own locks so
a dead process's part goes with it: a watcher thread the kernel wakes when an
exclusive holder lets go (:func:`on_release`), a probe of whether anyone
holds the lock (:func:`looks_free`), and the mark an operation leaves while
it waits for an env's lock, so that shared hand-outs let it go first
(:func:`announced`, :func:`writer_waits`). Who holds an env's lock is
:mod:`~uv_envs._locks.locks`'s to say; nothing here holds one for a caller.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# This process's watcher thread (see on_release) per lock file, by the event it sets,
# and a condition that tells when one ends: a watcher holds the file shared for an
# instant once the holder lets go, and that instant must not pass for a holder
# (see locks._take_now).
_watchers: dict[str, threading.Event] = {}
_watchers_changed = threading.Condition()


def watchers_settle(path: str, timeout: float) -> bool:
    """Wait up to ``timeout`` s until this process watches ``path`` no more; whether it did."""
    with _watchers_changed:
        return _watchers_changed.wait_for(lambda: path not in _watchers, timeout)


def on_release(path: str) -> threading.Event:
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


def looks_free(path: str) -> bool:
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


# struct flock as 64-bit Linux lays it out: type, whence, start, length, pid. Where the
# layout may differ (32-bit) or there are no open file description locks (not Linux),
# no mark is made or seen: nobody is preferred.
_FLOCK = struct.Struct("=hh4xqqi4x")
_SIXTY_FOUR_BIT = sys.maxsize > 2**32  # the test the platform module documents
_OFD_SETLK: int | None = getattr(fcntl, "F_OFD_SETLK", None) if _SIXTY_FOUR_BIT else None
_OFD_GETLK: int | None = getattr(fcntl, "F_OFD_GETLK", None) if _SIXTY_FOUR_BIT else None


def writers_file(path: str) -> str:
    return f"{path}.writers"


@contextmanager
def announced(path: str) -> Iterator[None]:
    fd = announce(path)
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # the mark goes with the descriptor


def announce(path: str) -> int | None:
    """Mark that an exclusive taker waits for ``path``'s lock until the descriptor is closed.

    The mark is a read lock on the ``.writers`` file beside the lock, of the
    open file description kind (Linux): any number of takers hold one at once,
    it conflicts between descriptors of one process as between processes,
    ``flock`` never sees it, and it goes when its holder dies. None where
    there is no such lock: shared takers then do not hold back.
    """
    if _OFD_SETLK is None:
        return None
    try:
        fd = os.open(writers_file(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        fcntl.fcntl(fd, _OFD_SETLK, _FLOCK.pack(fcntl.F_RDLCK, os.SEEK_SET, 0, 1, 0))
    except OSError:
        os.close(fd)
        return None
    return fd


def writer_waits(path: str) -> bool:
    """Whether an announced exclusive taker waits for ``path``'s lock; only asks, takes nothing."""
    if _OFD_GETLK is None:
        return False
    try:
        fd = os.open(writers_file(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False  # no taker ever announced itself here
    try:
        answer = fcntl.fcntl(fd, _OFD_GETLK, _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 1, 0))
    except OSError:
        return False
    finally:
        os.close(fd)
    return bool(_FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)
