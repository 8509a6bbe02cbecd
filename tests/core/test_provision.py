"""Create and ensure (``_core.provision``) against the fake uv: generation 1, reuse of an
unchanged spec, a new generation for a new spec or Python, and the rollback of a failed
create.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from uv_envs import (
    EnvironmentAlreadyExists,
    EnvManager,
    EnvStatus,
    Interpreter,
    ResolutionFailed,
    UvError,
)
from uv_envs.testing import FakePythonFinder, FakeUvExecutor, RecordingPublisher

from .conftest import (
    KEY,
    RUNNING_VERSION,
    current,
    env_dirs_under,
    generations,
    make_manager,
    snapshot,
)

RUNNING_MINOR = ".".join(str(p) for p in sys.version_info[:2])


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
