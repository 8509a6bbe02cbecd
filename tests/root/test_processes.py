"""Real processes: locking across processes, and kill -9 in the middle of operations."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uv_envs import EnvKey, EnvManager, EnvStatus, OperationRecord, Settings
from uv_envs._uv.python import PythonFinder

WORKER = Path(__file__).parents[1] / "support" / "proc_worker.py"


def start(
    settings: Settings, delay: float, operation: str, key: EnvKey, *packages: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            str(settings.root),
            str(settings.cache_dir),
            settings.index.find_links[0],
            str(delay),
            operation,
            key.workflow_id,
            key.node_id,
            key.version_id,
            *packages,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> str:
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    return stdout


def interval(record: OperationRecord) -> tuple[float, float]:
    assert record.finished_at is not None
    return record.started_at, record.finished_at


def test_two_processes_on_one_env_serialize_and_lose_nothing(manager: EnvManager) -> None:
    key = EnvKey("wf", "shared", "v1")
    manager.create(key, packages=["alpha"])

    first = start(manager.settings, 0.6, "add", key, "gamma")
    second = start(manager.settings, 0.6, "add", key, "beta")
    finish(first)
    finish(second)

    adds = [r for r in manager.operations("wf").items if r.operation == "add"]
    assert len(adds) == 2
    (_a_start, a_end), (b_start, _b_end) = sorted(interval(r) for r in adds)
    assert a_end <= b_start, "two operations on one env overlapped"
    # Neither add was lost: the second built on the first.
    assert set(manager.dependencies(key).locked) == {"alpha", "beta", "gamma"}
    assert manager.status(key).status is EnvStatus.READY


def test_processes_on_different_envs_overlap(manager: EnvManager) -> None:
    keys = [EnvKey("wf", "node", f"v{i}") for i in range(2)]
    for key in keys:
        manager.create(key, packages=["alpha"])

    processes = [start(manager.settings, 1.5, "add", key, "gamma") for key in keys]
    for process in processes:
        finish(process)

    adds = sorted(interval(r) for r in manager.operations("wf").items if r.operation == "add")
    (_a_start, a_end), (b_start, _b_end) = adds
    assert b_start < a_end, "operations on different envs did not run in parallel"


def wait_for(process: subprocess.Popen[str], marker: str) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if marker in line:
            return
        if not line and process.poll() is not None:
            raise AssertionError(
                f"worker exited before {marker}: {process.stderr.read() if process.stderr else ''}"
            )
    raise AssertionError(f"no {marker} within the deadline")


def kill(process: subprocess.Popen[str]) -> None:
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


@pytest.mark.parametrize("trial", range(3))
def test_kill_during_create_leaves_nothing(
    settings: Settings, python_finder: PythonFinder, trial: int
) -> None:
    key = EnvKey("wf", "crash", f"t{trial}")
    process = start(settings, 30, "create", key, "alpha")
    wait_for(process, "SYNCING")
    kill(process)

    manager = EnvManager(settings, python_finder=python_finder)
    assert manager.status(key).status is EnvStatus.NOT_FOUND
    assert not manager._core.services.layout.env_dir(key).exists()
    manager.recover()
    records = manager.operations("wf").items
    create = next(r for r in records if r.operation == "create")
    assert create.status == "FAILED"
    assert "interrupted" in (create.error or "")
    # The key is usable again at once.
    assert manager.create(key, packages=["alpha"]).status is EnvStatus.READY


def test_kill_during_add_keeps_the_previous_generation(
    settings: Settings, python_finder: PythonFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    key = EnvKey("wf", "crash", "add")
    before = manager.create(key, packages=["alpha"])
    process = start(settings, 30, "add", key, "gamma")
    wait_for(process, "SYNCING")
    kill(process)

    # Readers see the old generation, untouched, while the debris is still there.
    assert manager.status(key).status is EnvStatus.READY
    assert manager.dependencies(key).locked == {"alpha": "2.0"}
    assert (manager._core.services.layout.env_dir(key) / "gens" / "2").exists()

    assert manager.recover() == [key]
    after = manager.get(key)
    assert (after.generation, after.pending_generation) == (before.generation, None)
    assert sorted(p.name for p in (after.env_path / "gens").iterdir()) == ["1"]
    completed = subprocess.run([str(after.python_path), "-c", "import alpha"], check=False)
    assert completed.returncode == 0
    assert manager.add(key, ["gamma"]).environment.generation == 2
