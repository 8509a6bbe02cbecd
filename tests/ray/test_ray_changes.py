"""The Ray check of a dependency change: run again only when the change can alter ``import ray``.

Needs Ray importable in the test process, like tests/ray/test_raylink.py;
starts no cluster.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from tests.support.wheelhouse import build_wheel, ray_wheels
from uv_envs import EnvKey, EnvManager, EnvStatus, RayImportFailed, Settings
from uv_envs._uv import raylink
from uv_envs._uv.delta import touched_names
from uv_envs._uv.python import PythonFinder

if importlib.util.find_spec("ray") is None:
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

pytestmark = pytest.mark.ray

KEY = EnvKey("wf", "ray-changes")


@pytest.fixture(scope="module")
def extra_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ray_wheels(tmp_path_factory.mktemp("ray-wheels"))


@pytest.fixture
def ray_manager(settings: Settings, extra_wheels: Path, python_finder: PythonFinder) -> EnvManager:
    index = attrs.evolve(settings.index, find_links=(*settings.index.find_links, str(extra_wheels)))
    return EnvManager(attrs.evolve(settings, index=index), python_finder=python_finder)


@pytest.fixture
def checks(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The real check, counted: the interpreters it ran ``import ray`` with."""
    ran: list[Path] = []
    real: Callable[..., list[str]] = raylink.check_import

    def counted(python: Path, install: raylink.RayInstall, *, timeout: float) -> list[str]:
        ran.append(python)
        return real(python, install, timeout=timeout)

    monkeypatch.setattr(raylink, "check_import", counted)
    return ran


def imports_ray(python: Path) -> bool:
    completed = subprocess.run(
        [str(python), "-c", "import ray"], capture_output=True, timeout=120, check=False
    )
    return completed.returncode == 0


def fingerprint(env_dir: Path) -> dict[str, str]:
    files = [env_dir / "metadata.json", env_dir / "uv.lock", env_dir / "pyproject.toml"]
    result = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
    result["current"] = os.readlink(env_dir / "current")
    result["gens"] = ",".join(sorted(p.name for p in (env_dir / "gens").iterdir()))
    return result


def test_a_change_ray_never_looks_up_reuses_the_check(
    ray_manager: EnvManager, checks: list[Path]
) -> None:
    first = ray_manager.create(KEY, packages=["alpha"])
    assert len(checks) == 1

    added = ray_manager.add(KEY, ["gamma"]).environment
    removed = ray_manager.remove(KEY, ["gamma"]).environment

    assert len(checks) == 1  # neither change touched a name import ray looks up
    assert (added.generation, removed.generation) == (2, 3)
    assert imports_ray(added.pinned_python_path)
    assert imports_ray(first.pinned_python_path)
    assert added.ray is not None
    assert added.ray.error is None


def test_a_change_that_breaks_ray_is_checked_and_leaves_the_env_as_it_was(
    ray_manager: EnvManager, checks: list[Path]
) -> None:
    first = ray_manager.create(KEY, packages=["alpha"])
    before = fingerprint(first.env_path)

    with pytest.raises(RayImportFailed) as caught:
        ray_manager.add(KEY, ["msgpack"])  # Ray imports msgpack; this one raises

    assert "this msgpack is broken" in caught.value.stderr
    assert len(checks) == 2
    assert fingerprint(first.env_path) == before
    assert ray_manager.status(KEY).status is EnvStatus.READY
    assert imports_ray(first.python_path)


def test_a_new_spec_carries_the_check_from_the_newest_entry_when_ray_never_looks_it_up(
    ray_manager: EnvManager, checks: list[Path]
) -> None:
    ray_manager.create(KEY, packages=["alpha"])
    assert len(checks) == 1

    # Another key, a new spec: a new store entry differing from the first in gamma only.
    other = ray_manager.create(EnvKey("wf", "another-spec"), packages=["alpha", "gamma"])

    assert len(checks) == 1
    assert imports_ray(other.pinned_python_path)
    assert other.ray is not None
    assert other.ray.error is None


def test_a_new_spec_carries_the_check_from_an_older_entry_when_the_newest_differs_in_more(
    ray_manager: EnvManager, checks: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As if ``import ray`` looked up beta too (a real check, its names recorded plus beta).
    counted = raylink.check_import
    monkeypatch.setattr(
        raylink, "check_import", lambda *args, **kwargs: [*counted(*args, **kwargs), "beta"]
    )
    ray_manager.create(KEY, packages=["alpha"])
    ray_manager.create(EnvKey("wf", "with-beta"), packages=["alpha", "beta"])
    assert len(checks) == 2  # beta is a name the check looked up: checked again

    # Newest sealed: alpha + beta (differs in beta and gamma); before it, alpha (in gamma).
    other = ray_manager.create(EnvKey("wf", "with-gamma"), packages=["alpha", "gamma"])

    assert len(checks) == 2
    assert imports_ray(other.pinned_python_path)


def test_a_new_spec_touching_what_ray_imports_is_checked(
    ray_manager: EnvManager, checks: list[Path]
) -> None:
    ray_manager.create(KEY, packages=["alpha"])

    with pytest.raises(RayImportFailed) as caught:
        ray_manager.create(EnvKey("wf", "broken-spec"), packages=["alpha", "msgpack"])

    assert "this msgpack is broken" in caught.value.stderr
    assert len(checks) == 2


def site(tmp_path: Path, name: str, wheels: dict[str, str]) -> Path:
    """A site-packages holding the given wheels (name -> version), unpacked as installers do."""
    import zipfile

    directory = tmp_path / name
    directory.mkdir()
    for package, version in wheels.items():
        wheel = build_wheel(tmp_path / f"wheels-{name}", package, version)
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(directory)
    return directory


def test_touched_names_are_the_changed_distributions_only(tmp_path: Path) -> None:
    (tmp_path / "wheels-old").mkdir()
    (tmp_path / "wheels-new").mkdir()
    old = site(tmp_path, "old", {"alpha": "1.0", "gamma": "1.0", "beta": "1.0"})
    new = site(tmp_path, "new", {"alpha": "2.0", "gamma": "1.0", "delta": "1.0"})
    assert touched_names(old, new) == {"alpha", "beta", "delta"}


def test_a_script_naming_its_venv_is_no_change_and_a_pth_file_is(tmp_path: Path) -> None:
    (tmp_path / "wheels-old").mkdir()
    (tmp_path / "wheels-new").mkdir()
    old = site(tmp_path, "old", {"gamma": "1.0"})
    new = site(tmp_path, "new", {"gamma": "1.0"})
    for directory in (old, new):
        # A console script's RECORD row: its hash differs in every venv (its first line).
        record = directory / "gamma-1.0.dist-info" / "RECORD"
        row = f"../../../bin/gamma,sha256={directory.name},10\n"
        record.write_text(record.read_text() + row)
    assert touched_names(old, new) == set()

    (new / "hook.pth").write_text("import os\n")
    assert touched_names(old, new) is None


def test_a_changed_distribution_without_a_record_cannot_be_compared(tmp_path: Path) -> None:
    (tmp_path / "wheels-old").mkdir()
    (tmp_path / "wheels-new").mkdir()
    old = site(tmp_path, "old", {"gamma": "1.0"})
    new = site(tmp_path, "new", {"gamma": "1.0", "beta": "1.0"})
    (new / "beta-1.0.dist-info" / "RECORD").unlink()
    assert touched_names(old, new) is None
