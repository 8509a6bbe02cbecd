"""Waiting for an env's lock costs little, and a READY env is handed out together (issue 21, 3).

Another process's hold is played by a ``flock`` on a descriptor of the test's
own: flock locks of two open files conflict within one process as between two.
N tasks that need one new env on a node wait out one install: a waiter sleeps
until the holder lets go (a thread blocked in ``flock``), then tries; once the env is
READY with its spec it stops waiting for the exclusive lock and is handed the
env under the lock's shared side, beside the other waiters, never beside an
operation that holds the lock (the install's tail, a delete, a change).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest

from uv_envs import EnvironmentBusy, EnvironmentNotFound, EnvKey, EnvManager, EnvStatus
from uv_envs._locks import locks
from uv_envs._locks import watch as lock_watch
from uv_envs._store.damage import mark_damaged
from uv_envs._store.envdirs import current_dir
from uv_envs._store.layout import Layout
from uv_envs._store.venvs import linked_entry
from uv_envs.testing import FakePythonFinder, FakeUvExecutor

KEY = EnvKey("wf", "node")


@contextmanager
def held_elsewhere(path: Path) -> Iterator[int]:
    """Hold ``path``'s lock as another process would; yields the descriptor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield fd
    finally:
        os.close(fd)


def _impatient(manager: EnvManager, fake_uv: FakeUvExecutor) -> EnvManager:
    """Another manager of the same root that waits 0.3 s for a lock."""
    settings = attrs.evolve(manager.settings, lock_timeout=0.3)
    return EnvManager(settings, executor=fake_uv, python_finder=FakePythonFinder())


def _let_go_after(fd: int, seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, fcntl.flock, args=(fd, fcntl.LOCK_UN))
    timer.start()
    return timer


def test_a_wait_ends_with_the_lock_when_its_holder_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    with held_elsewhere(path) as fd:
        timer = _let_go_after(fd, 0.3)
        with locks.hold(path, timeout=10, what="x") as held:
            assert held
        timer.join()


def test_a_wait_sleeps_until_the_holder_lets_go_and_tries_the_lock_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env.lock"
    probes: list[bool] = []
    probe = lock_watch.looks_free

    def counted(lock_file: str) -> bool:
        probes.append(probe(lock_file))
        return probes[-1]

    monkeypatch.setattr(lock_watch, "looks_free", counted)
    with held_elsewhere(path) as fd:
        timer = _let_go_after(fd, 1.5)
        started = time.monotonic()
        with locks.hold(path, timeout=10, what="x") as held:
            assert held
            waited = time.monotonic() - started
        timer.join()
    # Woken by the kernel when the holder let go: no polls, and no poll interval late.
    assert probes == [True]
    assert 1.4 < waited < 3


def test_a_wait_made_moot_ends_without_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    asked: list[float] = []

    def moot() -> bool:
        asked.append(time.monotonic())
        return True  # what the holder did is what this waiter came for

    with held_elsewhere(path) as fd:
        timer = _let_go_after(fd, 0.3)
        with locks.hold(path, timeout=10, what="x", unless=moot) as held:
            assert not held
            assert locks.is_free(path)  # let go, and not taken by this wait
        timer.join()
    assert len(asked) == 1  # once, when the holder let go
    assert locks.registry_size() == 0


def test_a_wait_that_never_gets_the_lock_is_a_typed_error(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    with (
        held_elsewhere(path),
        pytest.raises(EnvironmentBusy, match=r"not free within 0\.3 s"),
        locks.hold(path, timeout=0.3, what="x", unless=lambda: False),
    ):
        pytest.fail("the lock was never free")


@contextmanager
def shared_elsewhere(path: Path) -> Iterator[None]:
    """Hold ``path``'s lock shared, as another process handing the env out would."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        yield
    finally:
        os.close(fd)


def test_shared_holds_go_together_and_never_beside_an_exclusive_one(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    with shared_elsewhere(path):
        with locks.shared(path, timeout=1, what="x") as held:
            assert held  # beside the other shared holder
        with pytest.raises(EnvironmentBusy):
            locks.hold(path, timeout=0.2, what="x").__enter__()
    with held_elsewhere(path), pytest.raises(EnvironmentBusy):
        locks.shared(path, timeout=0.2, what="x").__enter__()
    with locks.hold(path, timeout=1, what="x"), locks.shared(path, timeout=1, what="x") as held:
        assert not held  # this thread's own hold: the caller goes the exclusive way
    assert locks.is_free(path)


def test_the_waiters_of_one_process_share_one_watcher(tmp_path: Path) -> None:
    path = tmp_path / "env.lock"
    handed: list[bool] = []

    def hand_out() -> None:
        with locks.shared(path, timeout=10, what="x") as held:
            handed.append(held)

    before = set(threading.enumerate())  # a watcher left by another test may still end
    with held_elsewhere(path) as fd:
        waiters = [threading.Thread(target=hand_out) for _ in range(8)]
        for waiter in waiters:
            waiter.start()
        time.sleep(0.5)
        started = set(threading.enumerate()) - before
        watchers = [t for t in started if t.name == "uv-envs-lock-watch"]
        assert len(watchers) == 1
        fcntl.flock(fd, fcntl.LOCK_UN)
        for waiter in waiters:
            waiter.join()
    assert handed == [True] * 8


def _hand_outs_that_overlap(path: Path, stop: threading.Event) -> list[threading.Thread]:
    """Three readers taking the lock shared in turns, 0.3 s each, 0.1 s apart.

    The lock is free only if all three are late at once by 0.2 s or more.
    """

    def hand_out(offset: float) -> None:
        time.sleep(offset)
        while not stop.is_set():
            with locks.shared(path, timeout=10, what="x"):
                time.sleep(0.3)

    readers = [threading.Thread(target=hand_out, args=(o,)) for o in (0.0, 0.1, 0.2)]
    for reader in readers:
        reader.start()
    time.sleep(0.4)
    return readers


def test_a_stream_of_shared_holds_does_not_keep_an_announced_taker_waiting(
    tmp_path: Path,
) -> None:
    path = tmp_path / "env.lock"
    stop = threading.Event()
    readers = _hand_outs_that_overlap(path, stop)
    try:
        with pytest.raises(EnvironmentBusy):  # flock alone prefers nobody
            locks.hold(path, timeout=1, what="x").__enter__()
        with locks.hold(path, timeout=5, what="x", announce=True) as held:
            assert held
            assert not lock_watch.writer_waits(str(path))  # the mark goes once it holds
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert locks.is_free(path)


def test_a_delete_goes_before_a_stream_of_hand_outs(fake_manager: EnvManager) -> None:
    fake_manager.ensure(KEY, packages=["alpha"])
    lock_file = Layout(fake_manager.settings.root).lock_file(KEY)
    stop = threading.Event()
    readers = _hand_outs_that_overlap(lock_file, stop)
    try:
        fake_manager.delete(KEY)  # within the manager's lock_timeout (5 s)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    with pytest.raises(EnvironmentNotFound):
        fake_manager.get(KEY)


def test_a_watcher_left_by_a_wait_that_gave_up_is_no_holder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A watcher holds the file shared from the moment the holder lets go until it
    # runs again to close it; on a loaded machine that can take a while (it waits
    # for the GIL). Played here by a watcher that sleeps before closing.
    def slow_flock(fd: int, operation: int) -> None:
        fcntl.flock(fd, operation)
        if operation == fcntl.LOCK_SH:  # a watcher's blocking shared take
            time.sleep(0.1)

    monkeypatch.setattr(
        lock_watch,
        "fcntl",
        types.SimpleNamespace(
            flock=slow_flock,
            LOCK_SH=fcntl.LOCK_SH,
            LOCK_EX=fcntl.LOCK_EX,
            LOCK_NB=fcntl.LOCK_NB,
        ),
    )
    path = tmp_path / "env.lock"
    with held_elsewhere(path) as fd:
        with pytest.raises(EnvironmentBusy):
            locks.shared(path, timeout=0.2, what="x").__enter__()
        assert not locks.is_free(path)  # the holder, not the watcher it left
        fcntl.flock(fd, fcntl.LOCK_UN)
        time.sleep(0.02)  # the watcher takes the file shared and has not closed it yet
        assert locks.is_free(path)
        assert locks.try_acquire(path)
        locks.release(path)


def test_an_ensure_of_a_ready_env_shares_its_lock_with_other_hand_outs(
    fake_manager: EnvManager,
) -> None:
    built = fake_manager.ensure(KEY, packages=["alpha"])
    lock_file = Layout(fake_manager.settings.root).lock_file(KEY)
    with shared_elsewhere(lock_file):
        started = time.monotonic()
        assert fake_manager.ensure(KEY, packages=["alpha"]) == built
        assert fake_manager.create(KEY, packages=["alpha"]) == built
        assert time.monotonic() - started < fake_manager.settings.lock_timeout
    records = fake_manager.operations(workflow_id=KEY.workflow_id).items
    assert [(r.operation, r.metadata.get("reused")) for r in records[:2]] == [
        ("create", True),
        ("ensure", True),
    ]


def test_an_env_is_not_handed_out_while_an_operation_holds_it(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor
) -> None:
    fake_manager.ensure(KEY, packages=["alpha"])
    impatient = _impatient(fake_manager, fake_uv)
    # A delete, say, between its check for users and its removal of the env.
    with held_elsewhere(Layout(fake_manager.settings.root).lock_file(KEY)):
        with pytest.raises(EnvironmentBusy):
            impatient.ensure(KEY, packages=["alpha"])
        with pytest.raises(EnvironmentBusy):
            impatient.create(KEY, packages=["alpha"])


def test_an_ensure_that_must_change_the_env_still_waits_for_its_lock(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor
) -> None:
    fake_manager.ensure(KEY, packages=["alpha"])
    impatient = _impatient(fake_manager, fake_uv)
    lock_file = Layout(fake_manager.settings.root).lock_file(KEY)
    with held_elsewhere(lock_file), pytest.raises(EnvironmentBusy):
        impatient.ensure(KEY, packages=["beta"])
    assert fake_manager.get(KEY).spec.packages == ("alpha",)


def test_a_damaged_env_is_not_handed_out_without_its_lock(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor
) -> None:
    built = fake_manager.ensure(KEY, packages=["alpha"])
    layout = Layout(fake_manager.settings.root)
    entry = linked_entry(layout.store_dir, current_dir(built))
    assert entry is not None
    mark_damaged(entry)
    impatient = _impatient(fake_manager, fake_uv)
    with held_elsewhere(layout.lock_file(KEY)), pytest.raises(EnvironmentBusy):
        impatient.ensure(KEY, packages=["alpha"])  # must rebuild, so must wait
    assert fake_manager.get(KEY).status is EnvStatus.DAMAGED
    assert fake_manager.ensure(KEY, packages=["alpha"]).status is EnvStatus.READY  # rebuilt


def test_waiters_are_handed_the_env_together_once_its_install_lets_go(
    fake_manager: EnvManager,
) -> None:
    built = fake_manager.ensure(KEY, packages=["alpha"])
    layout = Layout(fake_manager.settings.root)
    record = layout.metadata_file(layout.env_dir(KEY))
    hidden = record.with_name("hidden.json")
    with held_elsewhere(layout.lock_file(KEY)) as fd:
        # As while another process builds it: no READY record yet, its lock held.
        record.rename(hidden)
        got: list[object] = []
        waiters = [
            threading.Thread(
                target=lambda: got.append(fake_manager.ensure(KEY, packages=["alpha"]))
            )
            for _ in range(4)
        ]
        for waiter in waiters:
            waiter.start()
        time.sleep(0.5)
        hidden.rename(record)  # the install commits READY, and still holds the lock
        time.sleep(0.5)
        assert got == []  # nothing is handed out before the install lets go
        fcntl.flock(fd, fcntl.LOCK_UN)
        for waiter in waiters:
            waiter.join(timeout=10)
        assert got == [built] * 4
    operations = fake_manager.operations(workflow_id=KEY.workflow_id).items
    assert [(r.operation, r.metadata.get("reused")) for r in operations[:4]] == [
        ("ensure", True)
    ] * 4
