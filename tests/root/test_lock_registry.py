"""The per-path lock registry keeps only locks someone holds (issue 18, finding 3).

Under writes the server's RSS grew with every new spec: the registry kept one
lock object per env, spec hash and store entry forever. Entries now go with
their last holder, as in virtualenv's ``lock_for_key``.
"""

from __future__ import annotations

import gc
import threading
from typing import TYPE_CHECKING

from filelock import FileLock

from uv_envs import EnvKey, EnvManager
from uv_envs._locks import locks

if TYPE_CHECKING:
    from pathlib import Path

SPECS = 60


def _live_file_locks() -> int:
    gc.collect()
    return sum(1 for thing in gc.get_objects() if isinstance(thing, FileLock))


def test_many_distinct_specs_leave_no_lock_objects_behind(fake_manager: EnvManager) -> None:
    fake_manager.ensure(EnvKey("warm", "up"), packages=["alpha"])  # imports, caches
    registered, live = locks.registry_size(), _live_file_locks()
    for n in range(SPECS):
        # A new key and a new spec hash (and store entry) every time.
        fake_manager.ensure(EnvKey("wf", f"node-{n}"), packages=[f"alpha>=1.0,<{n + 3}"])
    assert locks.registry_size() <= registered
    assert _live_file_locks() <= live


def test_a_held_lock_is_shared_and_kept_while_held(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    other_thread_got_it: list[bool] = []
    assert locks.try_acquire(path)
    gc.collect()  # nothing but the pin refers to the lock object now
    thread = threading.Thread(target=lambda: other_thread_got_it.append(locks.try_acquire(path)))
    thread.start()
    thread.join()
    assert other_thread_got_it == [False], "a second lock object would have let it in"
    assert not locks.is_free(path)
    locks.release(path)
    gc.collect()
    assert locks.is_free(path)
    assert locks.registry_size() == 0


def test_a_reentrant_try_acquire_needs_as_many_releases(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    assert locks.try_acquire(path)
    assert locks.try_acquire(path)  # the same thread again
    locks.release(path)
    gc.collect()
    assert not locks.is_free(path)
    locks.release(path)
    assert locks.is_free(path)


def test_a_thread_waiting_for_a_held_lock_gets_it_when_freed(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    got: list[bool] = []
    entered = threading.Event()

    def wait_for_it() -> None:
        entered.set()
        with locks.hold(path, timeout=10, what="x"):
            got.append(True)

    with locks.hold(path, timeout=1, what="x"):
        thread = threading.Thread(target=wait_for_it)
        thread.start()
        entered.wait(5)
        gc.collect()
        assert got == []
    thread.join(10)
    assert got == [True]
