"""Leases, verification and the disk budget, on real uv."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest

from uv_envs import (
    EnvironmentInUse,
    EnvKey,
    EnvManager,
    EnvStatus,
    InvalidInput,
    LocalEnvironmentProvider,
)

KEY = EnvKey("wf", "node", "v1")


def site_packages(manager: EnvManager, key: EnvKey) -> Path:
    venv = (manager._core.services.layout.env_dir(key) / ".venv").resolve()
    return next(venv.glob("lib/python*/site-packages"))


def test_a_leased_env_is_not_deleted_unless_forced(manager: EnvManager) -> None:
    manager.create(KEY, packages=["alpha"])
    with manager.lease(KEY) as leased:
        assert leased.status is EnvStatus.READY
        with pytest.raises(EnvironmentInUse):
            manager.delete(KEY, if_unused=True)
        report = manager.cleanup(idle_seconds=0)
        assert report.skipped_leased == (KEY,)
        assert report.deleted == ()
        assert manager.status(KEY).status is EnvStatus.READY
    assert manager.delete(KEY).status == "DELETED"


def test_force_deletes_a_leased_env(manager: EnvManager) -> None:
    manager.create(KEY, packages=["alpha"])
    with manager.lease(KEY):
        assert manager.delete(KEY, force=True).status == "DELETED"
    assert manager.status(KEY).status is EnvStatus.NOT_FOUND


def test_a_lease_keeps_its_generation_through_switches_and_pruning(manager: EnvManager) -> None:
    manager.create(KEY, packages=["alpha==1.0"])
    with manager.lease(KEY) as leased:
        manager.update(KEY, ["alpha==2.0"])
        manager.add(KEY, ["gamma"])
        time.sleep(0.02)
        report = manager.cleanup(idle_seconds=0.01)
        assert report.deleted == ()
        assert report.skipped_leased == (KEY,)
        # Generation 1 (leased) stays; generation 2 (not leased, retired) goes.
        gens = sorted(p.name for p in (leased.env_path / "gens").iterdir())
        assert gens == ["1", "3"]
        code = "import alpha; print(alpha.__version__)"
        out = subprocess.run(
            [str(leased.pinned_python_path), "-c", code], capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "1.0"
    time.sleep(0.02)
    manager.runtime_env(KEY)
    assert manager.cleanup(idle_seconds=0.01).pruned_generations == 1
    assert sorted(p.name for p in (leased.env_path / "gens").iterdir()) == ["3"]


def test_a_lease_ends_with_its_process(manager: EnvManager) -> None:
    manager.create(KEY, packages=["alpha"])
    holder = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).parents[1] / "support" / "lease_holder.py"),
            str(manager.settings.root),
            *attrs.astuple(KEY),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "LEASED"
        with pytest.raises(EnvironmentInUse):
            manager.delete(KEY, if_unused=True)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.communicate(timeout=30)
    assert manager.delete(KEY).status == "DELETED"


def test_provider_lease_pins_py_executable(manager: EnvManager) -> None:
    provider = LocalEnvironmentProvider(manager)
    provider.create_environment(
        "v", {"workflow_id": "wf", "node_id": "node", "version_id": "v1", "packages": ["alpha"]}
    )
    with provider.lease("v") as runtime:
        assert runtime["py_executable"] == runtime["pinned_python_path"]
        assert "/gens/" in runtime["py_executable"]
        with pytest.raises(EnvironmentInUse):
            manager.delete(KEY, if_unused=True)


def test_verify_finds_tampering_and_sync_repairs_it(manager: EnvManager) -> None:
    manager.create(KEY, packages=["beta"])
    assert manager.verify(KEY).ok

    module = site_packages(manager, KEY) / "alpha" / "__init__.py"
    module.chmod(0o644)
    module.write_text("raise ImportError('tampered')\n")
    report = manager.verify(KEY)
    assert not report.ok
    assert any("alpha/__init__.py" in p for p in report.problems)
    assert manager.status(KEY).status is EnvStatus.DAMAGED

    manager.sync(KEY)
    assert manager.status(KEY).status is EnvStatus.READY
    assert manager.verify(KEY).ok
    completed = subprocess.run(
        [str(manager.get(KEY).python_path), "-c", "import alpha"], check=False
    )
    assert completed.returncode == 0
    # verify dropped the damaged package from uv's cache: a new env gets sound bytes.
    fresh = manager.create(EnvKey("wf", "fresh"), packages=["alpha", "gamma"])
    assert manager.verify(fresh.key).ok


def test_a_damaged_shared_venv_is_not_linked_again(manager: EnvManager) -> None:
    manager.create(KEY, packages=["gamma"])
    (site_packages(manager, KEY) / "gamma" / "__init__.py").unlink()
    assert not manager.verify(KEY).ok

    other = manager.create(EnvKey("wf", "other"), packages=["gamma"])
    assert (other.env_path / ".venv").resolve() != (
        manager._core.services.layout.env_dir(KEY) / ".venv"
    ).resolve()
    assert manager.verify(other.key).ok
    # ensure with the same spec repairs the damaged env too.
    repaired = manager.ensure(KEY, packages=["gamma"])
    assert repaired.status is EnvStatus.READY
    assert manager.verify(KEY).ok


def test_verify_reports_a_missing_distribution(manager: EnvManager) -> None:
    manager.create(KEY, packages=["gamma"])
    site = site_packages(manager, KEY)
    for path in site.glob("gamma-*.dist-info"):
        for file in path.iterdir():
            file.unlink()
        path.rmdir()
    problems = manager.verify(KEY).problems
    assert any("gamma 1.0 is locked but not installed" in p for p in problems)


def test_the_disk_budget_deletes_least_recently_used_first(manager: EnvManager) -> None:
    keys = [EnvKey("wf", "n", f"v{i}") for i in range(3)]
    for key, package in zip(keys, ["alpha", "gamma", "beta"], strict=True):
        manager.create(key, packages=[package])
        time.sleep(0.02)
    manager.runtime_env(keys[0])  # now the most recently used
    everything = manager.cleanup(max_bytes=10**12).bytes_in_use
    assert everything is not None
    assert everything > 0

    report = manager.cleanup(max_bytes=everything - 1)
    assert report.deleted == (keys[1],)
    assert report.bytes_in_use is not None
    assert report.bytes_in_use < everything
    assert manager.cleanup(max_bytes=0).deleted == (keys[2], keys[0])


def test_cleanup_needs_a_limit(manager: EnvManager) -> None:
    with pytest.raises(InvalidInput):
        manager.cleanup()
    with pytest.raises(InvalidInput):
        manager.cleanup(idle_seconds=-1)
