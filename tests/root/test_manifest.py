"""The cheap hand-out check (issue 30), with real uv and wheels: a manifest of sizes and
mtimes is kept when a venv is built, finds a deleted package folder in a stat per file,
and follows ``verify`` (removed when it finds damage, measured again when sound)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from uv_envs import EnvKey, EnvManager, InterpreterFinder, Settings
from uv_envs._store.manifest import manifest_path, quick_check

KEY = EnvKey("wf", "manifest", "v1")
SPEC = ["beta", "gamma"]


def _venv(manager: EnvManager, key: EnvKey) -> Path:
    return manager.get(key).env_path / ".venv"


def test_a_built_venv_has_a_manifest_that_finds_a_deleted_package_folder(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    manager.create(KEY, packages=SPEC)
    venv = _venv(manager, KEY)
    assert manifest_path(venv).is_file()
    assert quick_check(venv) == []
    site = next(venv.resolve().glob("lib/python*/site-packages"))
    assert any(site.glob("gamma-*.dist-info"))
    shutil.rmtree(site / "gamma")  # the package folder goes, its dist-info stays
    found = quick_check(venv)
    assert found, "a deleted package folder passed the cheap check"
    assert any("gamma/__init__.py is missing" in line for line in found), found
    assert "gamma is missing from site-packages" in found
    # verify hashes it all, finds the damage, and drops the manifest: no cheap pass now.
    assert not manager.verify(KEY).ok
    assert quick_check(venv) is None
    report = manager.repair(KEY)
    assert report.repaired == (KEY,)
    repaired = _venv(manager, KEY)
    assert quick_check(repaired) == []
    assert (next(repaired.resolve().glob("lib/python*/site-packages")) / "gamma").is_dir()


def test_a_touched_file_fails_the_cheap_check_until_verify_measures_it_again(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    manager.create(KEY, packages=SPEC)
    venv = _venv(manager, KEY)
    module = next(venv.resolve().glob("lib/python*/site-packages")) / "beta" / "__init__.py"
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # same bytes, new mtime
    found = quick_check(venv)
    assert found is not None
    assert any("beta/__init__.py changed" in line for line in found), found
    assert manager.verify(KEY).ok  # the bytes are the lock's: sound
    assert quick_check(venv) == []


def test_a_package_added_to_site_packages_fails_the_cheap_check(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    manager.create(KEY, packages=SPEC)
    venv = _venv(manager, KEY)
    site = next(venv.resolve().glob("lib/python*/site-packages"))
    (site / "intruder.py").write_text("print('not from the lock')\n")
    assert quick_check(venv) == ["intruder.py was added to site-packages"]
