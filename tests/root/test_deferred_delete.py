"""A delete of an env a real process uses is deferred: withdrawn at once, removed once it exits.

Issue 28. The process is a Python started from the env's own interpreter; every
wait for the copy to go is bounded (``_wait_gone``), never a sleep as an assertion.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.env_users import EnvUsers
from uv_envs import (
    DeleteStatus,
    EnvironmentInUse,
    EnvironmentNotReady,
    EnvKey,
    EnvManager,
    EnvStatus,
)
from uv_envs.testing import RecordingPublisher

KEY = EnvKey("ml_pipeline", "rag", "v1")


@pytest.fixture
def users() -> Iterator[EnvUsers]:
    started = EnvUsers()
    yield started
    started.stop_all()


def _wait_gone(path: Path, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while path.exists():
        assert time.monotonic() < deadline, f"{path} still there {within} s after its last user"
        time.sleep(0.05)


def _deletes(manager: EnvManager) -> list[dict[str, object]]:
    """The metadata of the env's delete records, oldest first."""
    records = manager.operations(KEY.workflow_id).items
    return [dict(r.metadata) for r in reversed(records) if r.operation == "delete"]


def test_a_delete_in_use_is_deferred_withdrawn_then_finished_when_the_process_exits(
    manager: EnvManager, users: EnvUsers, events: RecordingPublisher
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = users.interpreter(environment.python_path)

    result = manager.delete(KEY)

    assert result.status is DeleteStatus.DEFERRED
    assert result.held_by == (pid,)
    assert environment.env_path.is_dir()  # the process keeps running from it
    status = manager.status(KEY)
    assert status.status is EnvStatus.DELETING
    assert f"pid {pid}" in (status.error or "")
    with pytest.raises(EnvironmentNotReady, match="DELETING"):
        manager.runtime_env(KEY)
    with pytest.raises(EnvironmentNotReady, match="DELETING"), manager.lease(KEY):
        pass
    assert "EnvironmentDeleted" not in events.names
    (deferred,) = _deletes(manager)
    assert (deferred["deferred"], deferred["held_by_pids"]) == (True, [pid])

    users.stop(pid)
    _wait_gone(environment.env_path)

    assert manager.status(KEY).status is EnvStatus.NOT_FOUND
    (deleted,) = [e for e in events.events if e.name == "EnvironmentDeleted"]
    assert deleted.key == KEY
    assert deleted.details == {"deferred": True}
    last = _deletes(manager)[-1]
    assert last["completed"] is True


def test_a_create_of_a_withdrawn_key_gets_a_fresh_env_and_the_old_one_keeps_running(
    manager: EnvManager, users: EnvUsers
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = users.interpreter(environment.python_path)
    assert manager.delete(KEY).status is DeleteStatus.DEFERRED

    fresh = manager.create(KEY, packages=["alpha"])

    assert fresh.status is EnvStatus.READY
    assert fresh.generation > environment.generation
    assert manager.runtime_env(KEY)["py_executable"]
    assert environment.pinned_python_path.exists()  # the running process's generation stays
    users.stop(pid)


def test_a_new_manager_on_the_root_finishes_a_pending_deferral(
    manager: EnvManager, users: EnvUsers
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = users.interpreter(environment.python_path)
    assert manager.delete(KEY).held_by == (pid,)
    manager.close()  # the server stops: the deferral stays recorded on disk
    users.stop(pid)
    assert environment.env_path.is_dir()

    restarted = EnvManager(manager.settings)
    try:
        _wait_gone(environment.env_path)
        assert restarted.status(KEY).status is EnvStatus.NOT_FOUND
    finally:
        restarted.close()


def test_if_unused_still_refuses_and_changes_nothing(manager: EnvManager, users: EnvUsers) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = users.interpreter(environment.python_path)

    with pytest.raises(EnvironmentInUse, match=f"pid {pid}"):
        manager.delete(KEY, if_unused=True)

    assert manager.status(KEY).status is EnvStatus.READY
    assert manager.delete(KEY, force=True).status is DeleteStatus.DELETED
    assert not environment.env_path.exists()
