"""The cheap hand-out check (issue 30), with real uv and wheels: a manifest of sizes and
mtimes is kept when a venv is built, finds a deleted package folder in a stat per file,
and follows ``verify`` (removed when it finds damage, measured again when sound); the
launcher a Ray worker starts through runs it before becoming the worker."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import strategies as s
from uv_envs import EnvKey, EnvManager, InterpreterFinder, Settings
from uv_envs._store.manifest import manifest_path, quick_check, read_manifest, write_manifest
from uv_envs._store.stamps import check_command, compare, encode

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
    written = write_manifest(venv)  # what it returns is what it wrote
    assert written == read_manifest(venv)
    assert any(path.endswith("/gamma/__init__.py") for path in written.files)
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


def _launch(venv: Path, on_damage: list[str]) -> subprocess.Popen[str]:
    """Start a "worker" through the launcher, as Ray's setup_worker would (bash, exec)."""
    python = str(venv / "bin" / "python")
    command = check_command(python, str(venv), on_damage)
    worker = shlex.join(["-c", "import sys; print('worker', sys.argv[1:])", "--ray-arg"])
    return subprocess.Popen(
        [shutil.which("bash") or "/bin/bash", "-c", f"exec {command} {worker}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out.strip(), err


def test_the_worker_launcher_starts_a_sound_copy_and_hands_a_changed_one_to_its_repair(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    manager.create(KEY, packages=SPEC)
    venv = _venv(manager, KEY)
    code, out, err = _finish(_launch(venv, []))
    assert code == 0, err
    assert out == "worker ['--ray-arg']"  # the worker's own arguments, exec'd
    site = next(venv.resolve().glob("lib/python*/site-packages"))
    shutil.rmtree(site / "gamma")
    repair = [sys.executable, "-c", "import sys; print('repair', sys.argv[1:3])"]
    code, out, err = _finish(_launch(venv, repair))
    assert code == 0, err
    assert out == f"repair [{str(venv / 'bin' / 'python')!r}, '-c']"
    assert "gamma/__init__.py is missing" in err


def test_the_worker_launcher_waits_for_a_changed_copy_to_be_rebuilt_then_starts_it(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    manager.create(KEY, packages=SPEC)
    venv = _venv(manager, KEY)
    site = next(venv.resolve().glob("lib/python*/site-packages"))
    shutil.rmtree(site / "gamma")
    launched = _launch(venv, [])
    time.sleep(1.5)
    assert launched.poll() is None  # not started on the changed copy: waiting
    assert manager.repair(KEY).repaired == (KEY,)  # what a server's reconciling round does
    code, out, err = _finish(launched)
    assert code == 0, err
    assert out == "worker ['--ray-arg']"
    assert "gamma/__init__.py is missing" in err


def test_a_manifest_of_the_older_format_counts_as_none_and_verify_replaces_it(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    manager.create(KEY, packages=SPEC)
    venv = _venv(manager, KEY)
    compact = manifest_path(venv)
    older = compact.with_name("manifest.json")
    compact.unlink()
    older.write_text(json.dumps({"files": {}, "entries": []}))  # as releases before it wrote
    assert quick_check(venv) is None  # absent: the next hand-out hashes every file
    assert manager.verify(KEY).ok
    assert not older.exists()
    assert quick_check(venv) == []


_SITE = "lib/python3.12/site-packages"


@settings(max_examples=40, deadline=None)
@given(s.site_trees(), st.data())
def test_the_compact_check_flags_exactly_the_files_that_moved_or_vanished(
    tree: dict[str, bytes], data: st.DataObject
) -> None:
    # Real files: the check is a stat per file and one hash over the stamps.
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as scratch:
        base = str(Path(scratch).resolve())
        Path(base, _SITE).mkdir(parents=True)
        for name, content in tree.items():
            path = Path(base, _SITE, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
        text, _, _ = encode(base, _SITE, [f"{_SITE}/{name}" for name in tree])
        assert compare(base, text) == []
        moved = set()
        for name, content in tree.items():
            action = data.draw(st.sampled_from(["keep", "touch", "grow", "delete"]), label=name)
            path = Path(base, _SITE, name)
            if action == "touch":
                info = path.stat()
                os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))
            elif action == "grow":
                info = path.stat()
                path.write_bytes(content + b"+")
                os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # size alone moves
            elif action == "delete":
                path.unlink()
            if action != "keep":
                moved.add(name)
        found = compare(base, text)
        assert found is not None
        per_file = [line for line in found if line.startswith(f"{_SITE}/")]
        assert sorted(line.split(" ")[0].removeprefix(f"{_SITE}/") for line in per_file) == sorted(
            moved
        ), (found, moved)
        # And a name at the top of site-packages that went (a whole folder, or a file there).
        gone = {name.split("/")[0] for name in tree} - {p.name for p in Path(base, _SITE).iterdir()}
        assert set(found) - set(per_file) == {f"{t} is missing from site-packages" for t in gone}
