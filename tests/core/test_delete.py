"""Delete (``_core.delete``): of one env, twice, and within a timeout."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from uv_envs import EnvironmentBusy, EnvironmentNotFound, EnvKey, EnvManager, EnvStatus
from uv_envs.testing import FakeUvExecutor, RecordingPublisher

from .conftest import KEY, held_in_another_thread, make_manager


def test_delete_twice(fake_manager: EnvManager, events: RecordingPublisher) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    del events.events[:]

    first = fake_manager.delete(KEY)
    second = fake_manager.delete(KEY)

    assert (first.key, first.status) == (KEY, "DELETED")
    assert (second.key, second.status) == (KEY, "NOT_FOUND")
    assert not environment.env_path.exists()
    assert list(fake_manager._core.services.layout.trash_dir.iterdir()) == []
    assert events.names == ["EnvironmentDeleted"]
    assert fake_manager.status(KEY).status is EnvStatus.NOT_FOUND
    with pytest.raises(EnvironmentNotFound):
        fake_manager.get(KEY)
    assert fake_manager.list_environments() == []
    assert fake_manager.delete(EnvKey("never", "was")).status == "NOT_FOUND"
    # The key is free again.
    assert fake_manager.create(KEY, packages=["gamma"]).generation == 1


def test_delete_of_one_version_keeps_its_siblings(fake_manager: EnvManager) -> None:
    siblings = [EnvKey("wf", "node", v) for v in ("", "v1", "v2")]
    for key in siblings:
        fake_manager.create(key, packages=["alpha"])
    fake_manager.delete(siblings[1])
    assert {e.key for e in fake_manager.list_environments("wf")} == {siblings[0], siblings[2]}
    for key in (siblings[0], siblings[2]):
        assert fake_manager.status(key).status is EnvStatus.READY
        assert fake_manager.get(key).python_path.exists()


def test_delete_within_its_own_timeout(tmp_path: Path, fake_uv: FakeUvExecutor) -> None:
    manager = make_manager(tmp_path, fake_uv, lock_timeout=30)
    manager.create(KEY, packages=["alpha"])
    with held_in_another_thread(manager._core.services.layout.lock_file(KEY)):
        started = time.monotonic()
        with pytest.raises(EnvironmentBusy):
            manager.delete(KEY, timeout=0.1)
        assert time.monotonic() - started < 4
    assert manager.delete(KEY, timeout=0.1).status == "DELETED"


def test_delete_within_still_works_but_is_deprecated(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    manager = make_manager(tmp_path, fake_uv)
    manager.create(KEY, packages=["alpha"])
    with pytest.warns(DeprecationWarning, match="delete\\(key, timeout=...\\)"):
        assert manager.delete_within(KEY, 5).status == "DELETED"
