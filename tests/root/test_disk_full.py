"""Disk full during create and during add (issue 9), on a small tmpfs mounted by the test.

The root lives on a tmpfs of a few megabytes; a filler file takes the rest of
it, then a create or an add runs out of space. It must fail with an error,
leave the envs that exist importable, and leave a root that ``recover()``
cleans once space returns, after which the same operation succeeds.

Mounting needs root (``.ci/run`` runs as root, with ``UV_ENVS_REQUIRE_TMPFS=1``
so that a skip there is a failure); elsewhere the tests skip with the reason.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import attrs
import pytest

import uv_envs
from tests.support.wheelhouse import build_wheel
from uv_envs import EnvKey, EnvManager, EnvStatus, IndexSettings, Settings

TMPFS_MB = 24
EXISTING = EnvKey("wf", "existing", "v1")
NEW = EnvKey("wf", "new", "v1")
#: ``bulky`` installs a module this big: more than any headroom below.
BULKY_BYTES = 4 << 20
#: Free bytes left on the disk: none (the audit row cannot be written), a little
#: and more (the record and the new venv are written, then uv runs out mid-install).
HEADROOMS = {"none": 0, "256k": 256 << 10, "2m": 2 << 20}


def _cannot(reason: str) -> NoReturn:
    # .ci/run sets UV_ENVS_REQUIRE_TMPFS=1: there these tests must run, not skip.
    if os.environ.get("UV_ENVS_REQUIRE_TMPFS") == "1":
        pytest.fail(f"UV_ENVS_REQUIRE_TMPFS=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        _cannot("mounting a tmpfs needs root (.ci/run runs as root)")
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        _cannot("no mount or umount command")
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        [mount, "-t", "tmpfs", "-o", f"size={TMPFS_MB}m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        _cannot(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run([umount, "-l", str(mount_point)], check=False)


def _fill(directory: Path, headroom: int) -> Path:
    """Write a file until the file system is full, then free ``headroom`` bytes; return it."""
    filler = directory / "filler"
    chunk = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as handle:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    handle.write(chunk[:size])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    if headroom:
        os.truncate(filler, max(0, filler.stat().st_size - headroom))
    return filler


def _importable(environment: uv_envs.Environment, module: str) -> bool:
    completed = subprocess.run(
        [str(environment.python_path), "-c", f"import {module}"], capture_output=True, check=False
    )
    return completed.returncode == 0


@pytest.fixture(scope="module")
def bulky_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("bulky-wheels")
    # Incompressible-looking text, so the installed file is as big as it says.
    body = "".join(f"# {os.urandom(48).hex()}\n" for _ in range(BULKY_BYTES // 100))
    build_wheel(directory, "bulky", "1.0", body=body)
    return directory


@pytest.fixture
def disk_manager(
    small_disk: Path,
    settings: Settings,
    python_finder: uv_envs.InterpreterFinder,
    bulky_wheels: Path,
) -> EnvManager:
    # uv's cache stays on the big disk (the session's), so only the root fills up.
    index = IndexSettings(find_links=(*settings.index.find_links, str(bulky_wheels)), no_index=True)
    return EnvManager(
        attrs.evolve(settings, root=small_disk / "root", index=index), python_finder=python_finder
    )


def _check_root_recovers(manager: EnvManager, existing: uv_envs.Environment) -> None:
    manager.recover()
    assert manager.recover() == [], "a second recover() still found something"
    assert list((manager.settings.root / "trash").iterdir()) == []
    again = manager.get(existing.key)
    assert again.status is EnvStatus.READY
    assert _importable(again, "gamma")
    assert manager.verify(existing.key).ok
    assert not manager.operations(status="RUNNING").items


@pytest.mark.parametrize("headroom", list(HEADROOMS))
def test_disk_full_during_create(disk_manager: EnvManager, small_disk: Path, headroom: str) -> None:
    existing = disk_manager.create(EXISTING, packages=["gamma"])
    filler = _fill(small_disk, HEADROOMS[headroom])
    try:
        with pytest.raises((uv_envs.UvEnvsError, OSError)) as failed:
            disk_manager.create(NEW, packages=["bulky", "beta"])
        print("create on a full disk:", type(failed.value).__name__, str(failed.value)[:300])
        # While the disk is still full: the existing env answers and imports.
        assert disk_manager.status(EXISTING).status is EnvStatus.READY
        assert _importable(existing, "gamma")
        assert disk_manager.status(NEW).status in {EnvStatus.NOT_FOUND, EnvStatus.FAILED}
    finally:
        filler.unlink()
    _check_root_recovers(disk_manager, existing)
    assert disk_manager.status(NEW).status is EnvStatus.NOT_FOUND
    created = disk_manager.create(NEW, packages=["bulky", "beta"])
    assert _importable(created, "beta")


@pytest.mark.parametrize("headroom", list(HEADROOMS))
def test_disk_full_during_add(disk_manager: EnvManager, small_disk: Path, headroom: str) -> None:
    existing = disk_manager.create(EXISTING, packages=["gamma"])
    before = (existing.env_path / "uv.lock").read_bytes()
    filler = _fill(small_disk, HEADROOMS[headroom])
    try:
        with pytest.raises((uv_envs.UvEnvsError, OSError)) as failed:
            disk_manager.add(EXISTING, ["bulky", "beta"])
        print("add on a full disk:", type(failed.value).__name__, str(failed.value)[:300])
        assert disk_manager.status(EXISTING).status is EnvStatus.READY
        assert _importable(existing, "gamma")
    finally:
        filler.unlink()
    _check_root_recovers(disk_manager, existing)
    now = disk_manager.get(EXISTING)
    assert now.generation == existing.generation, "the failed add switched generations"
    assert (now.env_path / "uv.lock").read_bytes() == before
    added = disk_manager.add(EXISTING, ["bulky", "beta"])
    assert added.environment.generation == existing.generation + 1
    assert _importable(disk_manager.get(EXISTING), "beta")
