"""Events: the ones a lifecycle publishes, in order, and a publisher that raises."""

from __future__ import annotations

from pathlib import Path

import pytest

from uv_envs import EnvManager, EnvStatus, Settings, UvError
from uv_envs.testing import FakePythonFinder, FakeUvExecutor, RecordingPublisher

from .conftest import KEY


def test_the_events_of_a_lifecycle(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor, events: RecordingPublisher
) -> None:
    fake_manager.create(KEY, packages=["alpha==1.0"])
    fake_manager.ensure(KEY, packages=["alpha==1.0"])  # reused: no event
    fake_manager.add(KEY, ["gamma"])
    fake_uv.fail_next("add")
    with pytest.raises(UvError):
        fake_manager.add(KEY, ["beta"])
    fake_manager.update(KEY, ["alpha>=2"])
    fake_manager.remove(KEY, ["gamma"])
    fake_manager.sync(KEY)
    fake_uv.fail_next("sync")
    with pytest.raises(UvError):
        fake_manager.sync(KEY)
    fake_manager.delete(KEY)
    fake_manager.delete(KEY)  # NOT_FOUND: no event
    fake_manager.cleanup(idle_seconds=0)

    assert events.names == [
        "EnvironmentCreationStarted",
        "EnvironmentCreated",
        "DependenciesAdded",
        "DependencyOperationFailed",
        "DependenciesUpdated",
        "DependenciesRemoved",
        "EnvironmentSynced",
        "EnvironmentSyncFailed",
        "EnvironmentDeleted",
        "EnvironmentCleanupCompleted",
    ]
    assert all(e.key == KEY for e in events.events[:-1])
    assert events.events[-1].key is None
    times = [e.occurred_at for e in events.events]
    assert times == sorted(times)


def test_a_raising_publisher_breaks_nothing(tmp_path: Path, fake_uv: FakeUvExecutor) -> None:
    def explode(event: object) -> None:
        raise RuntimeError("subscriber bug")

    manager = EnvManager(
        Settings(root=tmp_path / "root"),
        executor=fake_uv,
        python_finder=FakePythonFinder(),
        publish=explode,
    )
    assert manager.create(KEY, packages=["alpha"]).status is EnvStatus.READY
    assert manager.add(KEY, ["gamma"]).environment.generation == 2
    assert manager.delete(KEY).status == "DELETED"
