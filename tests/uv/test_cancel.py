"""Cancelling an operation (what a gRPC deadline does) stops uv and rolls back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from uv_envs import (
    EnvKey,
    EnvManager,
    EnvStatus,
    OperationCancelled,
    Settings,
    SubprocessUvExecutor,
)
from uv_envs._uv.commands import UvInvocation
from uv_envs._uv.executor import UvResult, find_uv_binary
from uv_envs._uv.python import PythonFinder

KEY = EnvKey("wf", "cancel", "v1")


class _PausingExecutor:
    """Pauses before each ``uv sync`` so the test can cancel in the middle."""

    def __init__(self) -> None:
        self.inner = SubprocessUvExecutor(find_uv_binary())
        self.syncing = threading.Event()

    def run(self, invocation: UvInvocation) -> UvResult:
        if invocation.args[:1] == ("sync",):
            self.syncing.set()
            time.sleep(0.5)
        return self.inner.run(invocation)


def run_cancelled(
    manager: EnvManager, executor: _PausingExecutor, operation: Callable[[], object]
) -> BaseException:
    cancel = threading.Event()
    caught: list[BaseException] = []

    def target() -> None:
        try:
            with manager.cancellable(cancel):
                operation()
        except BaseException as exc:
            caught.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    assert executor.syncing.wait(60)
    cancel.set()
    thread.join(60)
    assert len(caught) == 1
    return caught[0]


def test_a_cancelled_create_is_rolled_back(settings: Settings, python_finder: PythonFinder) -> None:
    executor = _PausingExecutor()
    manager = EnvManager(settings, executor=executor, python_finder=python_finder)

    error = run_cancelled(manager, executor, lambda: manager.create(KEY, packages=["alpha"]))

    assert isinstance(error, OperationCancelled)
    assert manager.status(KEY).status is EnvStatus.NOT_FOUND
    assert not manager._core.services.layout.env_dir(KEY).exists()
    record = manager.operations("wf").items[0]
    assert (record.operation, record.status) == ("create", "FAILED")


def test_a_cancelled_add_changes_nothing(settings: Settings, python_finder: PythonFinder) -> None:
    executor = _PausingExecutor()
    manager = EnvManager(settings, executor=executor, python_finder=python_finder)
    manager.create(KEY, packages=["alpha"])
    executor.syncing.clear()
    before = manager.get(KEY)

    error = run_cancelled(manager, executor, lambda: manager.add(KEY, ["gamma"]))

    assert isinstance(error, OperationCancelled)
    assert manager.get(KEY) == before
    assert sorted(p.name for p in (before.env_path / "gens").iterdir()) == ["1"]


def test_the_executor_stops_uv_when_cancelled(tmp_path: Path) -> None:
    fake_uv = tmp_path / "uv"
    fake_uv.write_text("#!/bin/sh\nsleep 30\n")
    fake_uv.chmod(0o755)
    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(OperationCancelled):
        SubprocessUvExecutor(str(fake_uv)).run(UvInvocation(("sync",), cancel=cancel, timeout=60))
    assert time.monotonic() - started < 10
