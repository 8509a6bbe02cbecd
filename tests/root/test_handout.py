"""A copy is proved before ``install_exact`` hands it out again (issue 30), real uv and wheels.

``install_exact`` is what every node of a Ray cluster runs before its workers
start from a copy. A sound copy costs the cheap check (no file hashed, no
``verify`` audited); a deleted package folder (its dist-info kept, so reads
say READY) is found, audited, rebuilt from the lock and announced; one that
cannot be rebuilt fails naming the damage, never handed out.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import attrs
import pytest

from tests.support.wheelhouse import build_wheelhouse
from uv_envs import (
    EnvironmentNotReady,
    EnvKey,
    EnvManager,
    EnvStatus,
    IndexSettings,
    InterpreterFinder,
    OperationStatus,
    ProvisionOutcome,
    Settings,
)
from uv_envs.testing import RecordingPublisher

KEY = EnvKey("wf", "handout", "v1")
SPEC = ["beta", "gamma"]


def _site(manager: EnvManager) -> Path:
    venv = (manager.get(KEY).env_path / ".venv").resolve()
    return next(venv.glob("lib/python*/site-packages"))


def _imports(manager: EnvManager, module: str) -> bool:
    python = manager.get(KEY).python_path
    done = subprocess.run(
        [str(python), "-c", f"import {module}"], check=False, capture_output=True, timeout=60
    )
    return done.returncode == 0


def _install_again(manager: EnvManager) -> ProvisionOutcome:
    project = manager.export(KEY)
    return manager.install_exact(
        KEY, pyproject_toml=project.pyproject_toml, uv_lock=project.uv_lock
    ).outcome


def _verifies(manager: EnvManager) -> list[dict[str, object]]:
    records = manager.operations(workflow_id=KEY.workflow_id, limit=50).items
    return [dict(r.metadata) for r in records if r.operation == "verify"]


def test_a_sound_copy_is_handed_out_after_the_cheap_check_only(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    manager.create(KEY, packages=SPEC)
    assert _install_again(manager) is ProvisionOutcome.REUSED
    assert _verifies(manager) == []  # nothing was hashed


def test_a_deleted_package_folder_is_rebuilt_from_the_lock_before_the_hand_out(
    settings: Settings, python_finder: InterpreterFinder, events: RecordingPublisher
) -> None:
    manager = EnvManager(settings, python_finder=python_finder, publish=events)
    created = manager.create(KEY, packages=SPEC)
    shutil.rmtree(_site(manager) / "gamma")  # dist-info kept: reads still say READY
    assert manager.get(KEY).status is EnvStatus.READY
    assert not _imports(manager, "gamma")
    events.events.clear()
    assert _install_again(manager) is ProvisionOutcome.REBUILT
    assert _imports(manager, "gamma")
    rebuilt = manager.get(KEY)
    assert rebuilt.status is EnvStatus.READY
    assert rebuilt.digest == created.digest  # the same lock: the same tree again
    # The audit trail says what was found before the hand-out ...
    (verify,) = _verifies(manager)
    assert verify["before_hand_out"] is True
    problems = verify["problems"]
    assert isinstance(problems, list)
    assert any("gamma/__init__.py is missing" in str(p) for p in problems), problems
    # ... and the events that it was rebuilt.
    synced = [e for e in events.events if e.name == "EnvironmentSynced"]
    assert len(synced) == 1
    assert any("gamma" in line for line in synced[0].details["repaired_damage"])
    assert synced[0].details["digest"] == created.digest
    # Sound again: the next hand-out hashes nothing.
    assert _install_again(manager) is ProvisionOutcome.REUSED
    assert len(_verifies(manager)) == 1


def test_a_copy_that_cannot_be_rebuilt_fails_naming_the_damage(
    settings: Settings, python_finder: InterpreterFinder, tmp_path: Path
) -> None:
    # A wheelhouse and uv cache of its own, so the lock's wheel can be taken away.
    wheels = build_wheelhouse(tmp_path / "wheels")
    own = attrs.evolve(
        settings,
        cache_dir=tmp_path / "uv-cache",
        index=IndexSettings(find_links=(str(wheels),), no_index=True),
    )
    manager = EnvManager(own, python_finder=python_finder)
    manager.create(KEY, packages=SPEC)
    shutil.rmtree(_site(manager) / "gamma")
    for wheel in wheels.glob("gamma-*.whl"):
        wheel.unlink()  # the check drops gamma from uv's cache: nothing to rebuild it from
    with pytest.raises(EnvironmentNotReady, match=r"copy of .* is damaged \(.*gamma.*rebuilding"):
        _install_again(manager)
    assert manager.get(KEY).status is EnvStatus.DAMAGED  # and stays so: never handed out
    with pytest.raises(EnvironmentNotReady, match=r"is damaged \(.*gamma"):
        _install_again(manager)
    records = manager.operations(workflow_id=KEY.workflow_id, limit=50).items
    assert any(r.status is OperationStatus.FAILED for r in records)
