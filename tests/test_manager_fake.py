"""The manager against the fakes of ``uv_envs.testing``: no uv, no patching of subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from packaging.requirements import Requirement

from uv_envs import (
    DirectReferenceNotAllowed,
    EnvironmentAlreadyExists,
    EnvironmentBusy,
    EnvironmentNotFound,
    EnvKey,
    EnvManager,
    EnvStatus,
    Interpreter,
    InvalidInput,
    InvalidPythonVersion,
    InvalidRequirement,
    PythonNotFound,
    RequirementsOptionNotAllowed,
    ResolutionFailed,
    Settings,
    UvError,
)
from uv_envs._root import locks as _locking
from uv_envs.testing import FakePythonFinder, FakeUvExecutor, RecordingPublisher

KEY = EnvKey("ml_pipeline", "rag", "v1")
RUNNING_VERSION = ".".join(str(p) for p in sys.version_info[:3])
RUNNING_MINOR = ".".join(str(p) for p in sys.version_info[:2])


def make_manager(
    tmp_path: Path,
    executor: FakeUvExecutor,
    publish: RecordingPublisher | None = None,
    *,
    python_finder: FakePythonFinder | None = None,
    **settings: object,
) -> EnvManager:
    options: dict[str, Any] = {"root": tmp_path / "root", "lock_timeout": 5, **settings}
    return EnvManager(
        Settings(**options),
        executor=executor,
        python_finder=python_finder or FakePythonFinder(),
        publish=publish,
    )


def snapshot(env_dir: Path) -> dict[str, Any]:
    """Everything a failed operation must leave as it was."""
    venv = env_dir / ".venv"
    return {
        "files": {
            n: (env_dir / n).read_bytes() for n in ("pyproject.toml", "uv.lock", "metadata.json")
        },
        "links": {
            n: os.readlink(env_dir / n) for n in (".venv", "pyproject.toml", "uv.lock", "current")
        },
        "gens": generations(env_dir),
        "venv": sorted(str(p.relative_to(venv)) for p in venv.rglob("*")),
        "venv_target": (env_dir / ".venv").resolve(),
    }


def generations(env_dir: Path) -> list[str]:
    return sorted((p.name for p in (env_dir / "gens").iterdir()), key=int)


def current(env_dir: Path) -> str:
    return os.readlink(env_dir / "current")


def env_dirs_under(root: Path) -> list[Path]:
    envs = root / "envs"
    return sorted(p for p in envs.glob("*/*/*")) if envs.exists() else []


@contextlib.contextmanager
def held_in_another_thread(path: Path) -> Iterator[None]:
    """Hold an env's lock from another thread for the duration of the block."""
    acquired = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with _locking.hold(path, timeout=10, what="the test"):
            acquired.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert acquired.wait(10), "the other thread did not get the lock"
        yield
    finally:
        release.set()
        holder.join(30)


# --- create / ensure ---------------------------------------------------------------------


def test_create_builds_generation_1(fake_manager: EnvManager, fake_uv: FakeUvExecutor) -> None:
    environment = fake_manager.create(KEY, packages=["alpha==1.0", "beta"])

    env_dir = fake_manager._core.services.layout.env_dir(KEY)
    assert environment.env_path == env_dir
    assert (environment.status, environment.generation, environment.pending_generation) == (
        EnvStatus.READY,
        1,
        None,
    )
    assert environment.python_path == env_dir / ".venv" / "bin" / "python"
    assert environment.python_path.exists()
    assert environment.pinned_python_path == env_dir / "gens" / "1" / ".venv" / "bin" / "python"
    assert environment.pinned_python_path.exists()
    assert environment.python_version == RUNNING_VERSION
    assert current(env_dir) == "gens/1"
    assert generations(env_dir) == ["1"]
    assert fake_manager.dependencies(KEY).locked == {"alpha": "1.0", "beta": "1.0"}
    assert (fake_uv.count("lock"), fake_uv.count("sync")) == (1, 1)
    assert fake_manager.get(KEY) == environment
    report = fake_manager.status(KEY)
    assert (report.status, report.has_pyproject, report.has_uv_lock, report.has_venv) == (
        EnvStatus.READY,
        True,
        True,
        True,
    )
    assert report.environment == environment


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


def test_repeated_create_and_ensure_run_no_uv(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor
) -> None:
    first = fake_manager.ensure(KEY, packages=["alpha", "beta"])
    calls = len(fake_uv.calls)
    before = snapshot(first.env_path)

    assert fake_manager.ensure(KEY, packages=["beta", "alpha"]) == first
    assert fake_manager.ensure(KEY, packages=["ALPHA", "BETA", "alpha"]) == first
    assert fake_manager.create(KEY, packages=["alpha", "beta"]) == first
    assert fake_manager.create(KEY, packages=["beta"], requirements_text="alpha\n") == first

    assert len(fake_uv.calls) == calls, "a repeated ensure ran uv"
    assert snapshot(first.env_path) == before


def test_create_with_another_spec_raises_and_changes_nothing(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor
) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    before = snapshot(environment.env_path)
    calls = len(fake_uv.calls)

    with pytest.raises(EnvironmentAlreadyExists) as caught:
        fake_manager.create(KEY, packages=["gamma"])
    assert isinstance(caught.value, FileExistsError)
    assert str(KEY) in str(caught.value)
    with pytest.raises(EnvironmentAlreadyExists):
        fake_manager.create(KEY, packages=["alpha==1.0"])

    assert len(fake_uv.calls) == calls
    assert snapshot(environment.env_path) == before


def test_ensure_with_another_spec_builds_generation_2(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor, events: RecordingPublisher
) -> None:
    first = fake_manager.ensure(KEY, packages=["alpha==1.0"])
    locks = fake_uv.count("lock")
    del events.events[:]

    second = fake_manager.ensure(KEY, packages=["gamma"])

    assert second.generation == 2
    assert second.spec_hash != first.spec_hash
    assert second.python_path == first.python_path
    assert [r.generation for r in second.retired] == [1]
    assert current(second.env_path) == "gens/2"
    assert fake_manager.dependencies(KEY).locked == {"gamma": "1.0"}
    assert fake_uv.count("lock") == locks + 1
    assert fake_manager.get(KEY) == second
    assert events.names == ["EnvironmentCreationStarted", "EnvironmentCreated"]
    # And ensure of the new spec is now a no-op.
    calls = len(fake_uv.calls)
    assert fake_manager.ensure(KEY, packages=["gamma"]) == second
    assert len(fake_uv.calls) == calls


def test_ensure_with_another_python_builds_a_generation_on_it(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    finder = FakePythonFinder(
        [
            Interpreter(Path(sys.executable), RUNNING_VERSION),
            Interpreter(Path(sys.executable), "3.99.1"),
        ]
    )
    manager = make_manager(tmp_path, fake_uv, python_finder=finder)
    first = manager.ensure(KEY, packages=["alpha"], python=RUNNING_MINOR)

    second = manager.ensure(KEY, packages=["alpha"], python="3.99")

    assert (first.python_version, second.python_version) == (RUNNING_VERSION, "3.99.1")
    assert second.generation == 2
    assert second.spec.python == "3.99"
    assert 'requires-python = "==3.99.*"' in manager.export(KEY).pyproject_toml


def test_a_failed_respec_keeps_the_old_generation(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor, events: RecordingPublisher
) -> None:
    first = fake_manager.ensure(KEY, packages=["alpha"])
    before = snapshot(first.env_path)
    del events.events[:]

    with pytest.raises(ResolutionFailed):
        fake_manager.ensure(KEY, packages=["no-such-package"])

    assert snapshot(first.env_path) == before
    assert fake_manager.get(KEY) == first
    assert events.names == ["EnvironmentCreationStarted", "EnvironmentCreationFailed"]
    record = fake_manager.operations(KEY.workflow_id).items[0]
    assert (record.operation, record.status) == ("ensure", "FAILED")
    assert "no-such-package" in record.stderr


def test_concurrent_ensures_of_one_key_build_once(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor
) -> None:
    results: list[Any] = []
    barrier = threading.Barrier(4)

    def ensure() -> None:
        barrier.wait(10)
        try:
            results.append(fake_manager.ensure(KEY, packages=["alpha"]))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(results) == 4
    assert all(r == results[0] for r in results), results
    assert results[0].generation == 1
    assert (fake_uv.count("lock"), fake_uv.count("sync")) == (1, 1)
    operations = sorted(r.operation for r in fake_manager.operations(KEY.workflow_id).items)
    assert operations == ["create", "ensure", "ensure", "ensure"]


# --- add / update / remove / sync --------------------------------------------------------


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
            lambda: fake_manager.update(KEY, ["alpha"]),
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


@pytest.mark.parametrize(
    "read",
    [
        lambda m: m.get(KEY),
        lambda m: m.dependencies(KEY),
        lambda m: m.export(KEY),
        lambda m: m.export_as(KEY, "requirements.txt"),
        lambda m: m.runtime_env(KEY),
    ],
)
def test_reading_a_missing_env_is_not_found(
    fake_manager: EnvManager, read: Callable[[EnvManager], Any]
) -> None:
    with pytest.raises(EnvironmentNotFound):
        read(fake_manager)
    assert fake_manager.status(KEY).status is EnvStatus.NOT_FOUND


def test_export(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha==1.0", "gamma"])
    exported = fake_manager.export(KEY)
    assert exported.key == KEY
    assert '"alpha==1.0"' in exported.pyproject_toml
    assert "package = false" in exported.pyproject_toml
    assert 'name = "gamma"' in exported.uv_lock
    assert fake_manager.export_as(KEY, "requirements.txt") == "alpha==1.0\ngamma==1.0\n"
    with pytest.raises(InvalidInput):
        fake_manager.export_as(KEY, "setup.py")  # type: ignore[arg-type]


def test_runtime_env(fake_manager: EnvManager) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    runtime = fake_manager.runtime_env(KEY)
    assert runtime["py_executable"] == runtime["python_path"] == str(environment.python_path)
    assert runtime["env_vars"] == {"VIRTUAL_ENV": str(environment.venv_path)}
    assert runtime["pinned_python_path"] == str(environment.pinned_python_path)
    assert runtime["env_path"] == str(environment.env_path)


# --- failed creates ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failing", "packages", "error"),
    [
        ("lock", ["alpha"], UvError),
        ("sync", ["alpha"], UvError),
        (None, ["no-such-package"], ResolutionFailed),
    ],
)
def test_a_failed_create_is_rolled_back(
    fake_manager: EnvManager,
    fake_uv: FakeUvExecutor,
    events: RecordingPublisher,
    failing: str | None,
    packages: list[str],
    error: type[Exception],
) -> None:
    if failing is not None:
        fake_uv.fail_next(failing, stderr="error: injected failure\n")

    with pytest.raises(error):
        fake_manager.create(KEY, packages=packages)

    root = fake_manager.settings.root
    assert not fake_manager._core.services.layout.env_dir(KEY).exists()
    assert env_dirs_under(root) == []
    assert list(fake_manager._core.services.layout.trash_dir.iterdir()) == []
    assert fake_manager.status(KEY).status is EnvStatus.NOT_FOUND
    assert fake_manager.list_environments() == []
    assert events.names == ["EnvironmentCreationStarted", "EnvironmentCreationFailed"]
    page = fake_manager.operations()
    assert page.total == 1
    record = page.items[0]
    assert (record.operation, record.status) == ("create", "FAILED")
    assert record.stderr
    assert record.exit_code not in (None, 0)
    assert record.finished_at is not None
    # The key can be created at once.
    assert fake_manager.create(KEY, packages=["alpha"]).generation == 1


# --- events and audit --------------------------------------------------------------------


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


def test_one_audit_record_per_operation(fake_manager: EnvManager, fake_uv: FakeUvExecutor) -> None:
    fake_manager.create(KEY, packages=["alpha==1.0"])
    fake_manager.ensure(KEY, packages=["alpha==1.0"])
    fake_manager.status(KEY)
    fake_manager.get(KEY)
    fake_manager.list_environments()
    fake_manager.dependencies(KEY)
    fake_manager.add(KEY, ["gamma"])
    fake_uv.fail_next("remove")
    with pytest.raises(UvError):
        fake_manager.remove(KEY, ["gamma"])
    fake_manager.update(KEY)
    fake_manager.sync(KEY)
    fake_manager.delete(KEY)

    page = fake_manager.operations()
    assert [(r.operation, r.status) for r in page.items] == [
        ("delete", "SUCCESS"),
        ("sync", "SUCCESS"),
        ("update", "SUCCESS"),
        ("remove", "FAILED"),
        ("add", "SUCCESS"),
        ("ensure", "SUCCESS"),
        ("create", "SUCCESS"),
    ]
    assert page.total == 7
    for record in page.items:
        assert (record.workflow_id, record.node_id, record.version_id) == (
            KEY.workflow_id,
            KEY.node_id,
            KEY.version_id,
        )
        assert record.finished_at is not None
        assert record.finished_at >= record.started_at
        assert record.duration_ms is not None
        assert record.duration_ms >= 0
        assert record.metadata["pid"] == os.getpid()
    assert page.items[-2].metadata.get("reused") is True
    assert page.items[0].metadata.get("reused") is None
    ids = [r.id for r in page.items]
    assert ids == sorted(ids, reverse=True)


def test_operations_filters_and_paging(fake_manager: EnvManager) -> None:
    keys = [EnvKey("wf1", "n1", "v1"), EnvKey("wf1", "n2", ""), EnvKey("wf2", "n1", "v1")]
    for key in keys:
        fake_manager.create(key, packages=["alpha"])
        fake_manager.sync(key)
    with pytest.raises(ResolutionFailed):
        fake_manager.add(keys[0], ["nope"])

    everything = fake_manager.operations(limit=100)
    assert everything.total == 7
    assert fake_manager.operations("wf1").total == 5
    assert fake_manager.operations("wf1", "n1").total == 3
    assert fake_manager.operations(node_id="n1").total == 5
    failed = fake_manager.operations(status="FAILED")
    assert [(r.workflow_id, r.node_id, r.operation) for r in failed.items] == [("wf1", "n1", "add")]
    assert fake_manager.operations("wf1", status="SUCCESS").total == 4
    assert fake_manager.operations("nope").total == 0

    first = fake_manager.operations(limit=3)
    second = fake_manager.operations(limit=3, offset=3)
    third = fake_manager.operations(limit=3, offset=6)
    assert (first.total, first.limit, first.offset) == (7, 3, 0)
    assert (second.total, second.offset) == (7, 3)
    assert [len(p.items) for p in (first, second, third)] == [3, 3, 1]
    assert [r.id for p in (first, second, third) for r in p.items] == [
        r.id for r in everything.items
    ]


def test_delete_operations(fake_manager: EnvManager) -> None:
    for key in [
        EnvKey("wf1", "n1", "v1"),
        EnvKey("wf1", "n2", ""),
        EnvKey("wf1", "n2", "v2"),
        EnvKey("wf2", "n1"),
    ]:
        fake_manager.create(key, packages=["alpha"])

    one_node = fake_manager.delete_operations("wf1", "n2")
    assert (one_node.workflow_id, one_node.node_id, one_node.deleted_count) == ("wf1", "n2", 2)
    assert one_node.deleted_node_ids == ("n2",)
    assert fake_manager.operations("wf1").total == 1

    fake_manager.sync(EnvKey("wf1", "n2", "v2"))
    workflow = fake_manager.delete_operations("wf1")
    assert workflow.deleted_count == 2
    assert workflow.deleted_node_ids == ("n1", "n2")
    assert fake_manager.operations("wf1").total == 0
    assert fake_manager.operations("wf2").total == 1

    nothing = fake_manager.delete_operations("wf1")
    assert (nothing.deleted_count, nothing.deleted_node_ids) == (0, ())
    with pytest.raises(InvalidInput):
        fake_manager.delete_operations("../x")
    with pytest.raises(InvalidInput):
        fake_manager.delete_operations("wf1", "a/b")


# --- delete / cleanup / list -------------------------------------------------------------


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


def test_cleanup_deletes_idle_envs(fake_manager: EnvManager, events: RecordingPublisher) -> None:
    idle = EnvKey("wf", "node", "idle")
    used = EnvKey("wf", "node", "used")
    fake_manager.create(idle, packages=["alpha"])
    fake_manager.create(used, packages=["alpha"])

    report = fake_manager.cleanup(idle_seconds=3600)
    assert (report.deleted, report.skipped_busy, report.pruned_generations) == ((), (), 0)

    time.sleep(0.5)
    fake_manager.runtime_env(used)  # a hand-out counts as use
    del events.events[:]
    started = time.time()
    report = fake_manager.cleanup(idle_seconds=0.3)

    assert report.deleted == (idle,)
    assert report.skipped_busy == ()
    assert started <= report.checked_at <= time.time()
    assert fake_manager.status(idle).status is EnvStatus.NOT_FOUND
    assert fake_manager.status(used).status is EnvStatus.READY
    assert events.names == ["EnvironmentDeleted", "EnvironmentCleanupCompleted"]
    assert events.events[0].key == idle
    assert fake_manager.operations(node_id="node").items[0].operation == "cleanup"


def test_cleanup_prunes_old_generations_of_a_used_env(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    fake_manager.sync(KEY)
    fake_manager.sync(KEY)
    env_dir = fake_manager._core.services.layout.env_dir(KEY)
    assert generations(env_dir) == ["1", "2", "3"]
    time.sleep(0.5)
    fake_manager.runtime_env(KEY)

    report = fake_manager.cleanup(idle_seconds=0.3)

    assert report.deleted == ()
    assert report.pruned_generations == 2
    assert generations(env_dir) == ["3"]
    environment = fake_manager.get(KEY)
    assert environment.retired == ()
    assert environment.python_path.exists()
    assert fake_manager.add(KEY, ["gamma"]).environment.generation == 4


def test_cleanup_skips_busy_envs(fake_manager: EnvManager) -> None:
    busy = EnvKey("wf", "node", "busy")
    free = EnvKey("wf", "node", "free")
    fake_manager.create(busy, packages=["alpha"])
    fake_manager.create(free, packages=["alpha"])
    time.sleep(0.05)

    with held_in_another_thread(fake_manager._core.services.layout.lock_file(busy)):
        started = time.monotonic()
        report = fake_manager.cleanup(idle_seconds=0)
        assert time.monotonic() - started < 4, "cleanup waited for a busy env"

    assert report.deleted == (free,)
    assert report.skipped_busy == (busy,)
    assert fake_manager.status(busy).status is EnvStatus.READY
    assert fake_manager.status(free).status is EnvStatus.NOT_FOUND


def test_cleanup_refuses_a_negative_age(fake_manager: EnvManager) -> None:
    with pytest.raises(InvalidInput):
        fake_manager.cleanup(idle_seconds=-1)


def test_list_environments_filters(fake_manager: EnvManager) -> None:
    keys = [
        EnvKey("wf1", "n1", "v1"),
        EnvKey("wf1", "n1", "v2"),
        EnvKey("wf1", "n2", "v1"),
        EnvKey("wf2", "n1", "v1"),
    ]
    for key in keys:
        fake_manager.create(key, packages=["alpha"])

    def listed(*args: str | None) -> set[EnvKey]:
        return {e.key for e in fake_manager.list_environments(*args)}

    assert listed() == set(keys)
    assert listed("wf1") == set(keys[:3])
    assert listed("wf1", "n1") == set(keys[:2])
    assert listed(None, "n1") == {keys[0], keys[1], keys[3]}
    assert listed("wf3") == set()
    assert listed("wf1", "n9") == set()
    assert all(e.status is EnvStatus.READY for e in fake_manager.list_environments())


def test_list_environments_is_sorted_by_key(fake_manager: EnvManager) -> None:
    keys = [EnvKey("wf", "node", v) for v in ("v", "1", "", "B", "a")] + [EnvKey("W", "n")]
    for key in keys:
        fake_manager.create(key, packages=["alpha"])
    assert [e.key for e in fake_manager.list_environments()] == sorted(keys)


# --- locking -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        lambda m: m.add(KEY, ["gamma"]),
        lambda m: m.ensure(KEY, packages=["gamma"]),
        lambda m: m.create(KEY, packages=["alpha"]),
        lambda m: m.sync(KEY),
        lambda m: m.delete(KEY),
    ],
)
def test_a_lock_timeout_is_environment_busy_naming_the_env(
    tmp_path: Path, fake_uv: FakeUvExecutor, operation: Callable[[EnvManager], Any]
) -> None:
    manager = make_manager(tmp_path, fake_uv, lock_timeout=0.2)
    environment = manager.create(KEY, packages=["alpha"])
    before = snapshot(environment.env_path)
    calls = len(fake_uv.calls)

    with held_in_another_thread(manager._core.services.layout.lock_file(KEY)):
        started = time.monotonic()
        with pytest.raises(EnvironmentBusy) as caught:
            operation(manager)
        assert time.monotonic() - started < 4

    assert isinstance(caught.value, TimeoutError)
    assert str(KEY) in str(caught.value)
    assert len(fake_uv.calls) == calls
    assert snapshot(environment.env_path) == before
    operation(manager)  # free again


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


def test_other_envs_are_not_blocked_by_a_busy_one(tmp_path: Path, fake_uv: FakeUvExecutor) -> None:
    manager = make_manager(tmp_path, fake_uv, lock_timeout=0.2)
    manager.create(KEY, packages=["alpha"])
    other = EnvKey("ml_pipeline", "rag", "v2")
    with held_in_another_thread(manager._core.services.layout.lock_file(KEY)):
        assert manager.create(other, packages=["alpha"]).status is EnvStatus.READY
        assert manager.status(KEY).status is EnvStatus.READY  # reading needs no lock


# --- bad input ---------------------------------------------------------------------------

BAD_CREATES: list[Any] = [
    pytest.param(
        {"packages": ["--index-url=https://evil.example"]}, InvalidRequirement, id="option"
    ),
    pytest.param({"packages": ["-e ."]}, InvalidRequirement, id="editable"),
    pytest.param({"packages": "alpha"}, InvalidRequirement, id="one-string"),
    pytest.param({"packages": [None]}, InvalidRequirement, id="not-a-string"),
    pytest.param({"packages": [""]}, InvalidRequirement, id="empty-package"),
    pytest.param(
        {"packages": ["alpha @ https://x.example/a.whl"]}, DirectReferenceNotAllowed, id="url"
    ),
    pytest.param({"packages": ["./pkg"]}, DirectReferenceNotAllowed, id="path"),
    pytest.param({"packages": ["git+https://github.com/x/y"]}, DirectReferenceNotAllowed, id="vcs"),
    pytest.param({"requirements_text": "-r other.txt\n"}, RequirementsOptionNotAllowed, id="req-r"),
    pytest.param(
        {"requirements_text": "--index-url https://x\n"},
        RequirementsOptionNotAllowed,
        id="req-index",
    ),
    pytest.param(
        {"requirements_text": b"alpha --hash=sha256:00\n"},
        RequirementsOptionNotAllowed,
        id="req-hash",
    ),
    pytest.param({"packages": ["alpha"], "python": "2.7"}, InvalidPythonVersion, id="python-2"),
    pytest.param(
        {"packages": ["alpha"], "python": "python3.12"}, InvalidPythonVersion, id="python-name"
    ),
    pytest.param({"packages": ["alpha"], "python": "3.2"}, PythonNotFound, id="python-missing"),
]


@pytest.mark.parametrize(("kwargs", "error"), BAD_CREATES)
@pytest.mark.parametrize("method", ["create", "ensure"])
def test_bad_input_to_create_changes_nothing(
    fake_manager: EnvManager,
    fake_uv: FakeUvExecutor,
    events: RecordingPublisher,
    method: str,
    kwargs: dict[str, Any],
    error: type[Exception],
) -> None:
    with pytest.raises(error) as caught:
        getattr(fake_manager, method)(KEY, **kwargs)
    assert isinstance(caught.value, InvalidInput)
    assert isinstance(caught.value, ValueError)

    assert env_dirs_under(fake_manager.settings.root) == []
    assert fake_uv.calls == []
    assert events.events == []
    assert fake_manager.operations().total == 0


BAD_CHANGES: list[Any] = [
    pytest.param(
        lambda m: m.add(KEY, ["--index-url=https://evil.example"]),
        InvalidRequirement,
        id="add-option",
    ),
    pytest.param(lambda m: m.add(KEY, "gamma"), InvalidRequirement, id="add-one-string"),
    pytest.param(lambda m: m.add(KEY, []), InvalidRequirement, id="add-nothing"),
    pytest.param(
        lambda m: m.add(KEY, ["gamma @ https://x/g.whl"]), DirectReferenceNotAllowed, id="add-url"
    ),
    pytest.param(
        lambda m: m.add(KEY, requirements_text="-e .\n"),
        RequirementsOptionNotAllowed,
        id="add-text",
    ),
    pytest.param(lambda m: m.update(KEY, ["-e ."]), InvalidRequirement, id="update-option"),
    pytest.param(lambda m: m.remove(KEY, []), InvalidRequirement, id="remove-nothing"),
    pytest.param(lambda m: m.remove(KEY, ["gamma"]), InvalidRequirement, id="remove-undeclared"),
    pytest.param(lambda m: m.remove(KEY, ["--all"]), InvalidRequirement, id="remove-option"),
]


@pytest.mark.parametrize(("change", "error"), BAD_CHANGES)
def test_bad_input_to_a_change_changes_nothing(
    fake_manager: EnvManager,
    fake_uv: FakeUvExecutor,
    events: RecordingPublisher,
    change: Callable[[EnvManager], Any],
    error: type[Exception],
) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    before = snapshot(environment.env_path)
    calls = len(fake_uv.calls)
    records = fake_manager.operations().total
    del events.events[:]

    with pytest.raises(error) as caught:
        change(fake_manager)

    assert isinstance(caught.value, InvalidInput)
    assert snapshot(environment.env_path) == before
    assert len(fake_uv.calls) == calls
    assert events.events == []
    assert fake_manager.operations().total == records


def test_python_not_found_lists_what_is_installed(tmp_path: Path, fake_uv: FakeUvExecutor) -> None:
    finder = FakePythonFinder(
        [
            Interpreter(Path(sys.executable), RUNNING_VERSION),
            Interpreter(Path("/opt/py/bin/python3"), "3.99.7"),
        ]
    )
    manager = make_manager(tmp_path, fake_uv, python_finder=finder)
    with pytest.raises(PythonNotFound) as caught:
        manager.create(KEY, packages=["alpha"], python="3.2")
    assert isinstance(caught.value, LookupError)
    assert caught.value.request == "3.2"
    assert set(caught.value.found) == {RUNNING_VERSION, "3.99.7"}
    assert RUNNING_VERSION in str(caught.value)
    assert "3.99.7" in str(caught.value)
    assert env_dirs_under(manager.settings.root) == []


# --- recovery ----------------------------------------------------------------------------


def test_status_rolls_back_a_create_whose_process_died(
    fake_manager: EnvManager, events: RecordingPublisher
) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    fake_manager._core.services.metadata.save(attrs.evolve(environment, status=EnvStatus.CREATING))
    del events.events[:]

    # Until someone looks under the lock, a list shows the dead create as FAILED.
    listed = fake_manager.list_environments()
    assert [(e.key, e.status) for e in listed] == [(KEY, EnvStatus.FAILED)]

    report = fake_manager.status(KEY)

    assert report.status is EnvStatus.NOT_FOUND
    assert not environment.env_path.exists()
    assert env_dirs_under(fake_manager.settings.root) == []
    assert events.names == ["EnvironmentCreationFailed"]
    assert fake_manager.list_environments() == []


def test_a_create_whose_process_still_holds_the_lock_is_left_alone(
    fake_manager: EnvManager,
) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    fake_manager._core.services.metadata.save(attrs.evolve(environment, status=EnvStatus.CREATING))

    with held_in_another_thread(fake_manager._core.services.layout.lock_file(KEY)):
        assert fake_manager.status(KEY).status is EnvStatus.CREATING
        assert fake_manager.recover() == []
        assert [e.status for e in fake_manager.list_environments()] == [EnvStatus.CREATING]
        assert environment.env_path.exists()

    assert fake_manager.status(KEY).status is EnvStatus.NOT_FOUND


def test_recover_rolls_back_a_dead_create(fake_manager: EnvManager) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    other = fake_manager.create(EnvKey("wf", "n"), packages=["alpha"])
    fake_manager._core.services.metadata.save(attrs.evolve(environment, status=EnvStatus.CREATING))

    assert fake_manager.recover() == [KEY]

    assert not environment.env_path.exists()
    assert fake_manager.get(other.key) == other
    assert fake_manager.recover() == []
    assert fake_manager.create(KEY, packages=["alpha"]).generation == 1


def test_recover_removes_a_create_that_died_before_its_first_metadata_write(
    fake_manager: EnvManager,
) -> None:
    kept = fake_manager.create(EnvKey("wf", "kept"), packages=["alpha"])
    # _build_new makes the env dir, then writes metadata.json: a crash in between
    # leaves a directory that no record names, at most with the temp file of the
    # write. (Generations come after the first write: a folder with generations
    # and no record lost it, and is quarantined instead; see tests/test_damage.py.)
    env_dir = fake_manager._core.services.layout.env_dir(KEY)
    env_dir.mkdir(parents=True)
    (env_dir / ".metadata.json.abc.tmp").write_text('{"schema_version"')
    assert fake_manager.status(KEY).status is EnvStatus.NOT_FOUND

    fake_manager.recover()

    assert not env_dir.exists(), "recover() left the debris of a dead create"
    assert fake_manager.get(kept.key) == kept


def half_built_generation(manager: EnvManager) -> tuple[Any, Path]:
    """A READY env at generation 1 whose add died after writing part of generation 2."""
    environment = manager.create(KEY, packages=["alpha"])
    gen_dir = manager._core.services.layout.generation_dir(environment.env_path, 2)
    (gen_dir / ".venv" / "lib").mkdir(parents=True)
    (gen_dir / "pyproject.toml").write_text("[project]\n")
    manager._core.services.metadata.save(attrs.evolve(environment, pending_generation=2))
    return environment, gen_dir


def test_recover_removes_a_half_built_generation(fake_manager: EnvManager) -> None:
    environment, gen_dir = half_built_generation(fake_manager)

    assert fake_manager.status(KEY).status is EnvStatus.READY
    assert fake_manager.recover() == [KEY]

    assert not gen_dir.exists()
    assert generations(environment.env_path) == ["1"]
    assert fake_manager.get(KEY) == environment
    assert current(environment.env_path) == "gens/1"
    assert fake_manager.recover() == []


def test_the_next_operation_removes_a_half_built_generation(fake_manager: EnvManager) -> None:
    environment, _ = half_built_generation(fake_manager)

    added = fake_manager.add(KEY, ["gamma"]).environment

    assert added.generation == 2
    assert added.pending_generation is None
    assert fake_manager.export(KEY).pyproject_toml.startswith("[project]\nname = ")
    assert fake_manager.dependencies(KEY).locked == {"alpha": "2.0", "gamma": "1.0"}
    assert generations(environment.env_path) == ["1", "2"]


def test_recover_removes_generations_no_record_knows(fake_manager: EnvManager) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    stray = fake_manager._core.services.layout.generation_dir(environment.env_path, 7)
    stray.mkdir(parents=True)
    (stray / "uv.lock").write_text("")

    repaired = fake_manager.recover()

    assert generations(environment.env_path) == ["1"]
    assert repaired == [KEY], "recover() must report the env it repaired"


def test_recover_repoints_current_after_a_crash_past_the_commit_point(
    fake_manager: EnvManager,
) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    committed = fake_manager.add(KEY, ["gamma"]).environment
    env_dir = committed.env_path
    # The process died between writing metadata (generation 2) and switching the link.
    temporary = env_dir / "current.tmp"
    os.symlink("gens/1", temporary)
    os.replace(temporary, env_dir / "current")
    assert (env_dir / "uv.lock").resolve().parent.name == "1"

    repaired = fake_manager.recover()

    assert current(env_dir) == "gens/2"
    assert (env_dir / "uv.lock").resolve().parent.name == "2"
    assert fake_manager.dependencies(KEY).locked == {"alpha": "2.0", "gamma": "1.0"}
    assert fake_manager.get(KEY) == committed
    assert repaired == [KEY], "recover() must report the env whose link it repaired"


def test_the_next_operation_repoints_current(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    fake_manager.add(KEY, ["gamma"])
    env_dir = fake_manager._core.services.layout.env_dir(KEY)
    os.symlink("gens/1", env_dir / "current.tmp")
    os.replace(env_dir / "current.tmp", env_dir / "current")

    synced = fake_manager.sync(KEY).environment

    assert synced.generation == 3
    assert current(env_dir) == "gens/3"
    assert fake_manager.dependencies(KEY).locked == {"alpha": "2.0", "gamma": "1.0"}


def test_recover_empties_the_trash(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    trash = fake_manager._core.services.layout.trash_dir
    (trash / "abc" / "gens" / "1").mkdir(parents=True)
    (trash / "abc" / "gens" / "1" / "uv.lock").write_text("x")
    (trash / "loose-file").write_text("x")
    # _discard renames a symlinked env dir into the trash as it is.
    os.symlink(fake_manager._core.services.layout.env_dir(KEY), trash / "a-symlinked-env-dir")

    fake_manager.recover()

    assert list(trash.iterdir()) == []
    assert fake_manager.status(KEY).status is EnvStatus.READY
    assert fake_manager.get(KEY).python_path.exists(), "emptying the trash followed a link"


def test_recover_closes_audit_records_of_dead_processes(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    code = (
        "import sys; from pathlib import Path; from uv_envs import EnvKey; "
        "from uv_envs._audit.sqlite import SqliteAuditLog; "
        "print(SqliteAuditLog(Path(sys.argv[1])).start(EnvKey('wf', 'dead'), 'add'))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(fake_manager._core.services.layout.audit_db)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    dead_id = int(completed.stdout)
    live_id = fake_manager._core.services.audit.start(EnvKey("wf", "live"), "add")

    fake_manager.recover()

    records = {r.id: r for r in fake_manager.operations(limit=100).items}
    dead = records[dead_id]
    assert dead.status == "FAILED"
    assert dead.finished_at is not None
    assert "interrupted" in (dead.error or "")
    assert records[live_id].status == "RUNNING"
    assert fake_manager.operations(status="RUNNING").total == 1


# --- a state machine over random operation sequences ---------------------------------------

STATE_KEYS = (EnvKey("wf", "n", "v1"), EnvKey("wf", "n", ""), EnvKey("wf2", "m", "v1"))
STATE_PACKAGES = ("alpha", "beta", "gamma")


class ManagerMachine(RuleBasedStateMachine):
    """Random sequences of operations, some failing, against a model of declared names."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.TemporaryDirectory()
        self.uv = FakeUvExecutor({"alpha": ["1.0", "2.0"], "beta": ["1.0"], "gamma": ["1.0"]})
        self.manager = EnvManager(
            Settings(root=Path(self.directory.name) / "root", lock_timeout=5),
            executor=self.uv,
            python_finder=FakePythonFinder(),
        )
        self.model: dict[EnvKey, frozenset[str]] = {}

    def teardown(self) -> None:
        self.directory.cleanup()

    def unchanged_after_failure(self, key: EnvKey, action: Callable[[], Any], failing: str) -> None:
        before = snapshot(self.manager._core.services.layout.env_dir(key))
        self.uv.fail_next(failing)
        with pytest.raises(UvError):
            action()
        assert snapshot(self.manager._core.services.layout.env_dir(key)) == before

    @rule(key=st.sampled_from(STATE_KEYS), names=st.sets(st.sampled_from(STATE_PACKAGES)))
    def ensure(self, key: EnvKey, names: set[str]) -> None:
        environment = self.manager.ensure(key, packages=sorted(names))
        assert environment.status is EnvStatus.READY
        self.model[key] = frozenset(names)

    @rule(key=st.sampled_from(STATE_KEYS), names=st.sets(st.sampled_from(STATE_PACKAGES)))
    def create(self, key: EnvKey, names: set[str]) -> None:
        if key in self.model and self.model[key] != names:
            with pytest.raises(EnvironmentAlreadyExists):
                self.manager.create(key, packages=sorted(names))
            return
        calls = len(self.uv.calls)
        self.manager.create(key, packages=sorted(names))
        if key in self.model:
            assert len(self.uv.calls) == calls, "create of an existing spec ran uv"
        self.model[key] = frozenset(names)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), name=st.sampled_from(STATE_PACKAGES), fail=st.booleans())
    def add(self, data: st.DataObject, name: str, fail: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        if fail:
            self.unchanged_after_failure(key, lambda: self.manager.add(key, [name]), "add")
            return
        self.manager.add(key, [name])
        self.model[key] = self.model[key] | {name}

    @precondition(lambda self: self.model)
    @rule(data=st.data(), name=st.sampled_from(STATE_PACKAGES), fail=st.booleans())
    def remove(self, data: st.DataObject, name: str, fail: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        if name not in self.model[key]:
            with pytest.raises(InvalidRequirement):
                self.manager.remove(key, [name])
            return
        if fail:
            self.unchanged_after_failure(key, lambda: self.manager.remove(key, [name]), "remove")
            return
        self.manager.remove(key, [name])
        self.model[key] = self.model[key] - {name}

    @precondition(lambda self: self.model)
    @rule(data=st.data(), fail=st.booleans())
    def update(self, data: st.DataObject, fail: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        if fail:
            self.unchanged_after_failure(key, lambda: self.manager.update(key), "lock")
            return
        self.manager.update(key)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), fail=st.booleans())
    def sync(self, data: st.DataObject, fail: bool) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        if fail:
            self.unchanged_after_failure(key, lambda: self.manager.sync(key), "sync")
            return
        self.manager.sync(key)

    @rule(key=st.sampled_from(STATE_KEYS))
    def delete(self, key: EnvKey) -> None:
        expected = "DELETED" if key in self.model else "NOT_FOUND"
        assert self.manager.delete(key).status == expected
        self.model.pop(key, None)

    @rule()
    def cleanup_of_nothing_idle(self) -> None:
        report = self.manager.cleanup(idle_seconds=3600)
        assert report.deleted == ()
        assert report.skipped_busy == ()

    @rule()
    def recover_finds_nothing_to_repair(self) -> None:
        assert self.manager.recover() == []

    @invariant()
    def the_disk_matches_the_model(self) -> None:
        for key in STATE_KEYS:
            env_dir = self.manager._core.services.layout.env_dir(key)
            if key not in self.model:
                assert self.manager.status(key).status is EnvStatus.NOT_FOUND
                assert not env_dir.exists()
                continue
            environment = self.manager.get(key)
            assert environment.status is EnvStatus.READY
            assert environment.pending_generation is None
            assert current(env_dir) == f"gens/{environment.generation}"
            known = {environment.generation, *(r.generation for r in environment.retired)}
            assert {int(g) for g in generations(env_dir)} == known
            assert environment.python_path.exists()
            assert environment.pinned_python_path.exists()
            dependencies = self.manager.dependencies(key)
            assert set(dependencies.locked) == self.model[key]
            declared = {Requirement(d).name for d in dependencies.declared}
            assert declared == self.model[key]
        listed = [e.key for e in self.manager.list_environments()]
        assert sorted(listed) == sorted(self.model)
        assert list(self.manager._core.services.layout.trash_dir.glob("*")) == []
        assert self.manager.operations(status="RUNNING").total == 0


ManagerMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
test_manager_state_machine = ManagerMachine.TestCase


def test_usage_counts_the_env_its_shared_venv_and_its_leases(fake_manager: EnvManager) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    usage = fake_manager.usage(KEY)
    assert usage.key == KEY
    assert usage.own_bytes > 0
    assert usage.venv_bytes > 0  # the venv lives in the store, outside the env's folder
    assert usage.last_used >= environment.updated_at
    assert usage.leased_generations == ()
    with fake_manager.lease(KEY) as leased:
        assert fake_manager.usage(KEY).leased_generations == (leased.generation,)
    assert fake_manager.usage(KEY).leased_generations == ()


def test_usage_of_an_unreadable_env_reports_its_folder(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    env_dir = fake_manager._core.services.layout.env_dir(KEY)
    (env_dir / "metadata.json").write_text("{not json")
    usage = fake_manager.usage(KEY)
    assert usage.own_bytes > 0
    assert usage.venv_bytes == 0


def test_usage_of_a_missing_env_is_not_found(fake_manager: EnvManager) -> None:
    with pytest.raises(EnvironmentNotFound):
        fake_manager.usage(KEY)
