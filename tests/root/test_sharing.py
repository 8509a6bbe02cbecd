"""Lock reuse, shared immutable venvs, single-flight and the install cap, on real uv."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import attrs
import pytest

from tests.support.wheelhouse import build_wheel
from uv_envs import EnvKey, EnvManager, IndexSettings, Settings, SubprocessUvExecutor
from uv_envs._uv.commands import UvInvocation
from uv_envs._uv.executor import UvResult, find_uv_binary
from uv_envs._uv.python import PythonFinder
from uv_envs.testing import CountingExecutor

SPEC = ["beta", "gamma"]


@pytest.fixture
def counting() -> CountingExecutor:
    return CountingExecutor(SubprocessUvExecutor(find_uv_binary()))


@pytest.fixture
def shared_manager(
    settings: Settings, python_finder: PythonFinder, counting: CountingExecutor
) -> EnvManager:
    return EnvManager(settings, executor=counting, python_finder=python_finder)


def resolutions(counting: CountingExecutor) -> int:
    return counting.count("lock", check=False)


def disk_usage(path: Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):  # os.walk does not follow the .venv links
        for name in files:
            file = Path(directory) / name
            if not file.is_symlink():
                total += file.stat().st_size
    return total


def site_packages(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_a_second_env_with_the_same_spec_reuses_the_lock_and_the_venv(
    shared_manager: EnvManager, counting: CountingExecutor
) -> None:
    first = shared_manager.create(EnvKey("wf", "a", "v1"), packages=SPEC)
    assert (resolutions(counting), counting.count("sync")) == (1, 1)

    second = shared_manager.create(EnvKey("wf", "b", "v1"), packages=["GAMMA", "beta"])
    assert (resolutions(counting), counting.count("sync")) == (1, 1), "resolved or installed again"
    # The stored lock's record vouches for it: no `uv lock --check` (see test_warm_path.py).
    assert len(counting.calls) == 2

    assert (first.env_path / ".venv").resolve() == (second.env_path / ".venv").resolve()
    assert (first.env_path / "uv.lock").read_bytes() == (second.env_path / "uv.lock").read_bytes()
    assert disk_usage(second.env_path) < 1_000_000
    record = shared_manager.operations("wf", "b").items[0]
    assert (record.metadata["resolved"], record.metadata["installed"]) == (False, False)
    assert record.metadata["uv_runs"] == 0
    completed = subprocess.run([str(second.python_path), "-c", "import beta, gamma"], check=False)
    assert completed.returncode == 0


def test_shared_venvs_are_read_only(shared_manager: EnvManager) -> None:
    environment = shared_manager.create(EnvKey("wf", "a", "v1"), packages=SPEC)
    site = Path(site_packages(environment.python_path))
    module = site / "gamma" / "__init__.py"
    assert not os.access(module, os.W_OK) or os.geteuid() == 0
    assert module.stat().st_mode & 0o222 == 0


@pytest.mark.parametrize("difference", ["spec", "python", "index"])
def test_no_reuse_when_spec_python_or_index_differ(
    shared_manager: EnvManager,
    counting: CountingExecutor,
    python_finder: PythonFinder,
    other_python: str,
    wheelhouse: Path,
    tmp_path: Path,
    difference: str,
) -> None:
    shared_manager.create(EnvKey("wf", "a", "v1"), packages=SPEC)
    manager, packages, python = shared_manager, SPEC, None
    if difference == "spec":
        packages = [*SPEC, "delta"]
    elif difference == "python":
        python = other_python
    else:
        mirror = tmp_path / "mirror"
        mirror.mkdir()
        for wheel in wheelhouse.iterdir():
            (mirror / wheel.name).write_bytes(wheel.read_bytes())
        index = IndexSettings(find_links=(str(mirror),), no_index=True)
        manager = EnvManager(
            attrs.evolve(shared_manager.settings, index=index),
            executor=counting,
            python_finder=python_finder,
        )
    other = manager.create(EnvKey("wf", "b", "v1"), packages=packages, python=python)

    assert resolutions(counting) == 2
    first_venv = (
        shared_manager._core.services.layout.env_dir(EnvKey("wf", "a", "v1")) / ".venv"
    ).resolve()
    if difference != "index":  # the same wheels from another folder may share a venv or not
        assert (other.env_path / ".venv").resolve() != first_venv


def test_add_on_one_sharing_env_leaves_the_other_unchanged(
    shared_manager: EnvManager, counting: CountingExecutor
) -> None:
    a, b = EnvKey("wf", "a", "v1"), EnvKey("wf", "b", "v1")
    shared_manager.create(a, packages=["gamma"])
    shared_manager.create(b, packages=["gamma"])
    b_venv = (shared_manager._core.services.layout.env_dir(b) / ".venv").resolve()

    shared_manager.add(a, ["alpha"])

    assert shared_manager.dependencies(b).locked == {"gamma": "1.0"}
    assert (shared_manager._core.services.layout.env_dir(b) / ".venv").resolve() == b_venv
    probe = "import importlib.util as u; print(u.find_spec('alpha') is None)"
    b_python = shared_manager.get(b).python_path
    assert (
        subprocess.run(
            [str(b_python), "-c", probe], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "True"
    )

    # Removing alpha again lands on the venv the two keys shared: nothing is installed.
    installs = counting.count("sync")
    shared_manager.remove(a, ["alpha"])
    assert counting.count("sync") == installs
    assert (shared_manager._core.services.layout.env_dir(a) / ".venv").resolve() == b_venv


def test_cleanup_removes_a_store_entry_only_when_nothing_points_at_it(
    shared_manager: EnvManager,
) -> None:
    a, b = EnvKey("wf", "a", "v1"), EnvKey("wf", "b", "v1")
    shared_manager.create(a, packages=SPEC)
    shared_manager.create(b, packages=SPEC)
    entry = (shared_manager._core.services.layout.env_dir(a) / ".venv").resolve().parent

    shared_manager.delete(a)
    assert shared_manager.cleanup(idle_seconds=3600).pruned_store_entries == 0
    assert entry.is_dir()

    shared_manager.delete(b)
    assert shared_manager.cleanup(idle_seconds=3600).pruned_store_entries == 1
    assert not entry.exists()


def test_concurrent_ensures_of_one_key_build_once(
    shared_manager: EnvManager, counting: CountingExecutor
) -> None:
    key = EnvKey("wf", "hot", "v1")
    results: list[Path] = []
    errors: list[BaseException] = []

    def ensure() -> None:
        try:
            results.append(shared_manager.ensure(key, packages=SPEC).env_path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(results)) == 1
    assert len(results) == 16
    assert (resolutions(counting), counting.count("sync")) == (1, 1)


def test_concurrent_creates_of_one_spec_in_processes_resolve_and_install_once(
    settings: Settings,
) -> None:
    worker = Path(__file__).parents[1] / "support" / "proc_worker.py"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                str(worker),
                str(settings.root),
                str(settings.cache_dir),
                settings.index.find_links[0],
                "0",
                "create",
                "wf",
                f"node{i}",
                "v1",
                *SPEC,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr

    manager = EnvManager(settings)
    creates = [r for r in manager.operations("wf").items if r.operation == "create"]
    assert len(creates) == 4
    assert sum(r.metadata["resolved"] for r in creates) == 1
    assert sum(r.metadata["installed"] for r in creates) == 1
    venvs = {(e.env_path / ".venv").resolve() for e in manager.list_environments("wf")}
    assert len(venvs) == 1


class _SlowSyncs:
    """Records when each install ran, and makes each take a while."""

    def __init__(self) -> None:
        self.inner = SubprocessUvExecutor(find_uv_binary())
        self.windows: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def run(self, invocation: UvInvocation) -> UvResult:
        if invocation.args[:1] != ("sync",):
            return self.inner.run(invocation)
        started = time.monotonic()
        time.sleep(0.3)
        result = self.inner.run(invocation)
        with self.lock:
            self.windows.append((started, time.monotonic()))
        return result


def test_the_install_cap_queues_instead_of_failing(
    settings: Settings, python_finder: PythonFinder
) -> None:
    executor = _SlowSyncs()
    manager = EnvManager(
        attrs.evolve(settings, max_concurrent_installs=1),
        executor=executor,
        python_finder=python_finder,
    )
    specs = [["alpha"], ["gamma"], ["beta"], ["delta"]]
    errors: list[BaseException] = []

    def create(index: int) -> None:
        try:
            manager.create(EnvKey("wf", f"n{index}"), packages=specs[index])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(specs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    windows = sorted(executor.windows)
    assert len(windows) == 4
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end <= start, "two installs ran at once despite max_concurrent_installs=1"


def test_a_stale_stored_lock_is_refreshed(
    settings: Settings, python_finder: PythonFinder, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    build_wheel(index_dir, "alpha", "1.0")
    local = attrs.evolve(settings, index=IndexSettings(find_links=(str(index_dir),), no_index=True))
    counting = CountingExecutor(SubprocessUvExecutor(find_uv_binary()))
    manager = EnvManager(local, executor=counting, python_finder=python_finder)
    manager.create(EnvKey("wf", "a"), packages=["alpha"])
    build_wheel(index_dir, "alpha", "1.1")

    # Fresh stored lock: reused, so the new release is not seen.
    manager.create(EnvKey("wf", "b"), packages=["alpha"])
    assert manager.dependencies(EnvKey("wf", "b")).locked == {"alpha": "1.0"}
    assert resolutions(counting) == 1

    # refresh=True resolves again.
    manager.create(EnvKey("wf", "c"), packages=["alpha"], refresh=True)
    assert manager.dependencies(EnvKey("wf", "c")).locked == {"alpha": "1.1"}
    assert resolutions(counting) == 2

    # So does a stored lock older than lock_max_age.
    build_wheel(index_dir, "alpha", "1.2")
    stale = EnvManager(
        attrs.evolve(local, lock_max_age=0), executor=counting, python_finder=python_finder
    )
    time.sleep(0.01)
    stale.create(EnvKey("wf", "d"), packages=["alpha"])
    assert stale.dependencies(EnvKey("wf", "d")).locked == {"alpha": "1.2"}
    assert resolutions(counting) == 3


def test_a_corrupt_stored_lock_falls_back_to_resolution(
    shared_manager: EnvManager, counting: CountingExecutor
) -> None:
    first = shared_manager.create(EnvKey("wf", "a"), packages=SPEC)
    stored = shared_manager._core.services.resolution_store.path(first.spec_hash)
    stored.write_text("this is not a lock")
    second = shared_manager.create(EnvKey("wf", "b"), packages=SPEC)
    assert resolutions(counting) == 2
    assert shared_manager.dependencies(second.key).locked == {
        "alpha": "2.0",
        "beta": "1.0",
        "gamma": "1.0",
    }
