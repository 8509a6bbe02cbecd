"""The replication port (``_core.replication``): what the served Ray route is wired with.

A fake replication records each call; the facade must call it after each
change (never after a failed one), around a delete, for each env a cleanup
deleted, and while the key's stripe is held.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from uv_envs import (
    DeleteResult,
    DeleteStatus,
    Environment,
    EnvironmentAlreadyExists,
    EnvironmentInUse,
    EnvKey,
    EnvManager,
    Export,
    InvalidInput,
    Settings,
)
from uv_envs.testing import FakePythonFinder, FakeUvExecutor

from .conftest import KEY


class RecordingReplication:
    """Records each call; ``refuse`` makes ``check_python`` raise.

    ``changed`` also notes whether another thread had to wait for the key's stripe.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.refuse = False
        #: the replicas ``deleted`` says keep a copy (in use there)
        self.kept: tuple[str, ...] = ()
        self.manager: EnvManager | None = None
        self.stripe_held: list[bool] = []
        self._waiters: list[threading.Thread] = []

    def check_python(self, request: str) -> None:
        self.calls.append(("check_python", request))
        if self.refuse:
            raise InvalidInput(f"no replica runs Python {request}")

    def changed(self, environment: Environment, project: Export) -> None:
        assert project.key == environment.key
        assert project.uv_lock == (environment.env_path / "uv.lock").read_text()
        self.calls.append(("changed", (environment.key, environment.generation)))
        self.stripe_held.append(self._held_elsewhere(environment.key))

    def deleted(self, key: EnvKey, env_path: Path) -> tuple[str, ...]:
        self.calls.append(("deleted", (key, env_path)))
        return self.kept

    def close(self) -> None:
        self.calls.append(("close", None))
        for thread in self._waiters:
            thread.join(timeout=10)

    def _held_elsewhere(self, key: EnvKey) -> bool:
        """Whether another thread must wait for the key's stripe now."""
        assert self.manager is not None
        replicas = self.manager._core.replicas
        got = threading.Event()

        def take() -> None:
            with replicas.serialized(key):
                got.set()

        thread = threading.Thread(target=take)
        thread.start()
        self._waiters.append(thread)
        return not got.wait(0.2)


def replicated_manager(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> tuple[EnvManager, RecordingReplication]:
    replication = RecordingReplication()
    manager = EnvManager(
        Settings(root=tmp_path / "root", lock_timeout=5, default_python="3.11"),
        executor=fake_uv,
        python_finder=FakePythonFinder(),
        replication=replication,
    )
    replication.manager = manager
    return manager, replication


def test_each_change_is_replicated_after_it_is_made(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    manager, replication = replicated_manager(tmp_path, fake_uv)
    other = EnvKey("wf", "other")
    manager.create(KEY, packages=["alpha"])
    manager.ensure(KEY, packages=["alpha", "beta"], python="3.11")
    manager.provision(other, packages=["alpha"])
    manager.add(KEY, ["gamma"])
    manager.update(KEY, ["alpha<2"])  # a change (an update that changes nothing keeps its gen)
    manager.remove(KEY, ["gamma"])
    manager.sync(KEY)
    project = manager.export(other)
    manager.adopt(KEY, pyproject_toml=project.pyproject_toml, uv_lock=project.uv_lock)

    assert replication.calls == [
        ("check_python", "3.11"),
        ("changed", (KEY, 1)),
        ("check_python", "3.11"),
        ("changed", (KEY, 2)),
        ("check_python", "3.11"),
        ("changed", (other, 1)),
        ("changed", (KEY, 3)),
        ("changed", (KEY, 4)),
        ("changed", (KEY, 5)),
        ("changed", (KEY, 6)),
        ("changed", (KEY, 7)),
    ]
    # Each changed() ran while the key's stripe was held: another change waited.
    assert replication.stripe_held == [True] * 8
    manager.close()


def test_a_failed_or_refused_change_is_not_replicated(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    manager, replication = replicated_manager(tmp_path, fake_uv)
    manager.create(KEY, packages=["alpha"])
    del replication.calls[:]
    with pytest.raises(EnvironmentAlreadyExists):
        manager.create(KEY, packages=["beta"])
    replication.refuse = True
    other = EnvKey("wf", "refused")
    with pytest.raises(InvalidInput, match=r"no replica runs Python 3\.10"):
        manager.create(other, packages=["alpha"], python="3.10")

    assert replication.calls == [("check_python", "3.11"), ("check_python", "3.10")]
    assert manager.status(other).environment is None  # refused before anything was built
    manager.close()


def test_delete_and_cleanup_release_on_the_replicas(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    manager, replication = replicated_manager(tmp_path, fake_uv)
    leased, idle = EnvKey("wf", "leased"), EnvKey("wf", "idle")
    for key in (KEY, leased, idle):
        manager.create(key, packages=["alpha"])
    env_path = manager.get(KEY).env_path
    del replication.calls[:]

    assert manager.delete(KEY).status == "DELETED"
    assert manager.delete(KEY).status == "NOT_FOUND"  # released again, as the route always did
    with manager.lease(leased), pytest.raises(EnvironmentInUse):
        manager.delete(leased, if_unused=True)  # refused here: nothing to release
    assert replication.calls == [("deleted", (KEY, env_path)), ("deleted", (KEY, env_path))]

    del replication.calls[:]
    with manager.lease(leased):
        report = manager.cleanup(idle_seconds=0)
    assert report.deleted == (idle,)
    assert replication.calls == [("deleted", (idle, manager.status(idle).env_path))]

    del replication.calls[:]
    manager.close()
    assert replication.calls == [("close", None)]


def test_a_delete_replicas_keep_for_now_is_deferred_and_names_them(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    manager, replication = replicated_manager(tmp_path, fake_uv)
    manager.create(KEY, packages=["alpha"])
    replication.kept = ("n1@10.0.0.2",)

    result = manager.delete(KEY)

    assert (result.status, result.held_on, result.held_by) == ("DEFERRED", ("n1@10.0.0.2",), ())
    assert manager.delete(KEY).status == "NOT_FOUND"  # gone here: a fresh env for a create
    replication.kept = ()
    assert manager.delete(KEY) == DeleteResult(KEY, DeleteStatus.NOT_FOUND)
