"""Add, update, remove and sync (``_core.dependencies``): each change is a new generation,
and a failed one leaves the env byte for byte as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from uv_envs import (
    EnvironmentNotFound,
    EnvKey,
    EnvManager,
    EnvStatus,
    OperationResult,
    ResolutionFailed,
    UvError,
)
from uv_envs.testing import FakeUvExecutor, RecordingPublisher

from .conftest import KEY, current, env_dirs_under, generations, make_manager, snapshot


def test_a_fake_env_is_healthy_to_verify_and_to_a_sync_of_a_co_user(
    fake_manager: EnvManager,
) -> None:
    # Checks hash the shared venv before a sync of one of its users: the fake's
    # venvs must pass them, or every sync would "repair" the other users.
    other = EnvKey("wf", "other", "v1")
    for key in (KEY, other):
        fake_manager.create(key, packages=["alpha==1.0"])
    assert fake_manager.verify(KEY).ok
    fake_manager.sync(KEY)
    assert [r.operation for r in fake_manager.operations(node_id="other").items] == ["create"]
    assert fake_manager.status(other).status is EnvStatus.READY


def test_each_change_is_a_new_generation_behind_current(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor, events: RecordingPublisher
) -> None:
    created = fake_manager.create(KEY, packages=["alpha==1.0"])
    env_dir = created.env_path

    steps: list[tuple[Callable[[], Any], dict[str, str], str]] = [
        (
            lambda: fake_manager.add(KEY, ["gamma"]),
            {"alpha": "1.0", "gamma": "1.0"},
            "DependenciesAdded",
        ),
        (
            # A new specifier the locked version already meets: the lock stays, the
            # declared dependency changes (a change that changes nothing: see below).
            lambda: fake_manager.update(KEY, ["alpha<2"]),
            {"alpha": "1.0", "gamma": "1.0"},
            "DependenciesUpdated",
        ),
        (
            lambda: fake_manager.update(KEY, ["alpha>=2"]),
            {"alpha": "2.0", "gamma": "1.0"},
            "DependenciesUpdated",
        ),
        (lambda: fake_manager.remove(KEY, ["GAMMA"]), {"alpha": "2.0"}, "DependenciesRemoved"),
        (lambda: fake_manager.sync(KEY), {"alpha": "2.0"}, "EnvironmentSynced"),
    ]
    for number, (step, locked, event) in enumerate(steps, start=2):
        del events.events[:]
        outcome = step()
        environment = outcome.environment
        assert environment.generation == number
        assert environment.status is EnvStatus.READY
        assert environment.pending_generation is None
        assert fake_manager.get(KEY) == environment
        assert current(env_dir) == f"gens/{number}"
        assert (env_dir / "uv.lock").resolve() == (
            env_dir / "gens" / str(number) / "uv.lock"
        ).resolve()
        assert environment.pinned_python_path.exists()
        assert environment.python_path == created.python_path
        assert fake_manager.dependencies(KEY).locked == locked
        assert [r.generation for r in environment.retired] == list(range(1, number))
        assert outcome.exit_code == 0
        assert events.names == [event]
    assert generations(env_dir) == ["1", "2", "3", "4", "5", "6"]
    declared = fake_manager.dependencies(KEY).declared
    assert declared == ("alpha>=2",)


def test_a_change_that_changes_nothing_keeps_the_generation(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor, events: RecordingPublisher
) -> None:
    created = fake_manager.create(KEY, packages=["alpha==1.0", "beta"])
    before = snapshot(created.env_path)
    steps: list[Callable[[], OperationResult]] = [
        lambda: fake_manager.update(KEY),
        lambda: fake_manager.update(KEY, ["alpha"]),
        lambda: fake_manager.add(KEY, ["beta"]),
    ]
    for step in steps:
        del events.events[:]
        outcome = step()
        assert outcome.changed is False
        assert outcome.environment == fake_manager.get(KEY) == created
        assert generations(created.env_path) == ["1"]
        assert current(created.env_path) == "gens/1"
        assert snapshot(created.env_path) == before
        [event] = events.events
        assert event.details["changed"] is False
        assert event.details["generation"] == 1
    assert fake_uv.count("sync") == 1, "a change that changes nothing installed something"
    [update, *_] = [r for r in fake_manager.operations().items if r.operation == "update"]
    assert update.status == "SUCCESS"
    assert update.metadata["changed"] is False

    changed = fake_manager.update(KEY, ["alpha>=2"])
    assert changed.changed is True
    assert changed.environment.generation == 2


def test_update_of_everything(fake_manager: EnvManager, fake_uv: FakeUvExecutor) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    fake_uv.catalog = {**fake_uv.catalog, "alpha": ["1.0", "2.0", "3.0"]}
    fake_manager.sync(KEY)
    assert fake_manager.dependencies(KEY).locked == {"alpha": "2.0"}, "sync must follow the lock"
    assert fake_manager.update(KEY).environment.generation == 3
    assert fake_manager.dependencies(KEY).locked == {"alpha": "3.0"}


def test_sync_does_not_change_the_spec(fake_manager: EnvManager, fake_uv: FakeUvExecutor) -> None:
    created = fake_manager.create(KEY, packages=["alpha", "beta"])
    synced = fake_manager.sync(KEY).environment
    assert synced.spec_hash == created.spec_hash
    calls = len(fake_uv.calls)
    assert fake_manager.ensure(KEY, packages=["alpha", "beta"]).generation == 2
    assert len(fake_uv.calls) == calls


def test_sync_keeps_the_spec_of_a_requirements_text_with_options(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    manager = make_manager(tmp_path, fake_uv, allow_requirements_options=True)
    text = "--prefer-binary\nalpha\n"
    created = manager.create(KEY, requirements_text=text)
    assert created.spec.requirements_text == text

    synced = manager.sync(KEY).environment
    calls = len(fake_uv.calls)
    again = manager.ensure(KEY, requirements_text=text)

    # sync rebuilds the venv from the same lock: the env still has the spec it was made from.
    assert synced.spec == created.spec
    assert again.generation == synced.generation, "ensure of the unchanged spec rebuilt the env"
    assert len(fake_uv.calls) == calls


OPERATIONS: dict[str, Callable[[EnvManager], Any]] = {
    "add": lambda m: m.add(KEY, ["gamma"]),
    "update": lambda m: m.update(KEY, ["alpha>=2"]),
    "remove": lambda m: m.remove(KEY, ["beta"]),
    "sync": lambda m: m.sync(KEY),
}
FAILED_EVENT = {
    "add": "DependencyOperationFailed",
    "update": "DependencyOperationFailed",
    "remove": "DependencyOperationFailed",
    "sync": "EnvironmentSyncFailed",
}


@pytest.mark.parametrize(
    ("operation", "failing"),
    [
        ("add", "add"),
        ("add", "sync"),
        ("update", "add"),
        ("update", "sync"),
        ("remove", "remove"),
        ("remove", "sync"),
        ("sync", "sync"),
    ],
)
def test_a_failed_change_leaves_the_env_byte_identical(
    fake_manager: EnvManager,
    fake_uv: FakeUvExecutor,
    events: RecordingPublisher,
    operation: str,
    failing: str,
) -> None:
    environment = fake_manager.create(KEY, packages=["alpha==1.0", "beta"])
    before = snapshot(environment.env_path)
    audit_before = fake_manager.operations().total
    del events.events[:]
    fake_uv.fail_next(failing, stderr="error: injected failure\n", exit_code=2)

    with pytest.raises(UvError) as caught:
        OPERATIONS[operation](fake_manager)

    assert caught.value.exit_code == 2
    assert "injected failure" in caught.value.stderr
    assert fake_uv.count(failing) >= 1
    assert snapshot(environment.env_path) == before
    assert not (environment.env_path / "gens" / "2").exists()
    assert fake_manager.get(KEY) == environment
    assert fake_manager.status(KEY).status is EnvStatus.READY
    assert events.names == [FAILED_EVENT[operation]]
    page = fake_manager.operations()
    assert page.total == audit_before + 1
    record = page.items[0]
    assert (record.operation, record.status, record.exit_code) == (operation, "FAILED", 2)
    assert "injected failure" in record.stderr
    assert record.error
    # The env is usable: the same operation succeeds next time as generation 2.
    assert OPERATIONS[operation](fake_manager).environment.generation == 2


def test_a_failed_resolution_of_an_add_carries_uv_stderr(fake_manager: EnvManager) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    before = snapshot(environment.env_path)
    with pytest.raises(ResolutionFailed) as caught:
        fake_manager.add(KEY, ["does-not-exist"])
    assert "does-not-exist" in caught.value.stderr
    assert caught.value.exit_code == 1
    assert snapshot(environment.env_path) == before


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_changing_a_missing_env_is_not_found(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor, operation: str
) -> None:
    with pytest.raises(EnvironmentNotFound) as caught:
        OPERATIONS[operation](fake_manager)
    assert isinstance(caught.value, LookupError)
    assert str(KEY) in str(caught.value)
    assert fake_uv.calls == []
    assert env_dirs_under(fake_manager.settings.root) == []
