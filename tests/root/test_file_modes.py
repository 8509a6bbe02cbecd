"""What uv-envs creates under a root is its owner's alone (issue 31, finding 7).

The audit trail names every operation, its output and its caller, and was
0644 in a 0755 root. A root uv-envs creates is 0700 and the audit database
0600 whatever the umask; a root the operator made keeps the mode they gave it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from uv_envs import EnvKey, EnvManager, Settings
from uv_envs.testing import FakePythonFinder

if TYPE_CHECKING:
    from collections.abc import Iterator

    from uv_envs.testing import FakeUvExecutor

KEY = EnvKey("modes", "node")


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022), which would leave files readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _manager(root: Path, fake_uv: FakeUvExecutor) -> EnvManager:
    settings = Settings(root=root, lock_timeout=5)
    return EnvManager(settings, executor=fake_uv, python_finder=FakePythonFinder())


@pytest.mark.usefixtures("open_umask")
def test_a_new_root_and_its_audit_database_are_owner_only(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    root = tmp_path / "fresh" / "root"
    manager = _manager(root, fake_uv)
    manager.create(KEY, packages=["alpha"])
    assert manager.operations().total >= 1  # the audit database was written
    assert _mode(root) == 0o700
    audit = root / "audit.sqlite3"
    assert _mode(audit) == 0o600
    for side in (root / "audit.sqlite3-wal", root / "audit.sqlite3-shm"):
        if side.exists():
            assert _mode(side) == 0o600, side


@pytest.mark.usefixtures("open_umask")
def test_a_root_the_operator_made_keeps_its_mode(tmp_path: Path, fake_uv: FakeUvExecutor) -> None:
    root = tmp_path / "mine"
    root.mkdir(mode=0o755)
    manager = _manager(root, fake_uv)
    manager.create(KEY, packages=["alpha"])
    assert _mode(root) == 0o755
    assert _mode(root / "audit.sqlite3") == 0o600


@pytest.mark.usefixtures("open_umask")
def test_a_root_shared_with_a_group_gets_a_group_audit_database(
    tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    root.chmod(0o2770)  # how an operator shares a root with a group
    manager = _manager(root, fake_uv)
    manager.create(KEY, packages=["alpha"])
    assert _mode(root) == 0o2770
    assert _mode(root / "audit.sqlite3") == 0o660  # the group's, never everyone's
