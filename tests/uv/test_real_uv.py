"""Every operation on real uv, against the wheelhouse built by the tests."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import attrs
import pytest

from tests.conftest import RUNNING_MINOR
from tests.support.wheelhouse import build_wheel
from uv_envs import (
    EnvironmentAlreadyExists,
    EnvironmentNotFound,
    EnvKey,
    EnvManager,
    EnvStatus,
    ExportFormat,
    IndexSettings,
    InvalidRequirement,
    PythonNotFound,
    ResolutionFailed,
    Settings,
)
from uv_envs._uv.python import PythonFinder
from uv_envs.testing import RecordingPublisher

KEY = EnvKey("ml_pipeline", "rag", "v1")


def run_python(python: Path | str, code: str) -> str:
    completed = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return completed.stdout.strip()


def tree_fingerprint(env_dir: Path) -> dict[str, str]:
    """Hashes of the lock, pyproject, metadata and every RECORD of the live venv."""
    files = [env_dir / "pyproject.toml", env_dir / "uv.lock", env_dir / "metadata.json"]
    files += sorted((env_dir / ".venv").glob("lib/python*/site-packages/*.dist-info/RECORD"))
    result = {
        str(f.relative_to(env_dir)): hashlib.sha256(f.read_bytes()).hexdigest() for f in files
    }
    result["current"] = os.readlink(env_dir / "current")
    result["gens"] = ",".join(sorted(p.name for p in (env_dir / "gens").iterdir()))
    return result


def test_create_builds_a_working_env_with_the_documented_layout(manager: EnvManager) -> None:
    environment = manager.create(KEY, packages=["beta"])

    env_dir = environment.env_path
    assert env_dir.is_relative_to(manager.settings.root)
    for name in ("pyproject.toml", "uv.lock", ".venv", "metadata.json"):
        assert (env_dir / name).exists(), name
    assert environment.python_path == env_dir / ".venv" / "bin" / "python"
    assert environment.status is EnvStatus.READY
    assert environment.python_version.startswith(RUNNING_MINOR)
    assert (
        run_python(environment.python_path, "import alpha, beta; print(alpha.__version__)") == "2.0"
    )
    pyproject = (env_dir / "pyproject.toml").read_text()
    assert "package = false" in pyproject
    report = manager.status(KEY)
    assert (report.status, report.has_pyproject, report.has_uv_lock, report.has_venv) == (
        EnvStatus.READY,
        True,
        True,
        True,
    )


def test_create_is_idempotent_for_the_same_spec_and_refuses_another(manager: EnvManager) -> None:
    first = manager.create(KEY, packages=["alpha"])
    again = manager.create(KEY, packages=["ALPHA"])  # same spec, other spelling
    assert again.generation == first.generation == 1

    with pytest.raises(EnvironmentAlreadyExists):
        manager.create(KEY, packages=["gamma"])
    assert manager.get(KEY).spec_hash == first.spec_hash


def test_ensure_moves_an_existing_env_to_a_new_spec(manager: EnvManager) -> None:
    manager.ensure(KEY, packages=["alpha==1.0"])
    changed = manager.ensure(KEY, packages=["gamma"])

    assert changed.generation == 2
    assert manager.dependencies(KEY).locked == {"gamma": "1.0"}
    assert run_python(changed.python_path, "import gamma; print(gamma.__version__)") == "1.0"


def test_envs_on_two_python_minor_versions(manager: EnvManager, other_python: str) -> None:
    here = manager.create(EnvKey("wf", "node", "here"), packages=["alpha"])
    there = manager.create(EnvKey("wf", "node", "there"), packages=["alpha"], python=other_python)

    assert run_python(here.python_path, "import sys; print(sys.version_info[:2])") == str(
        tuple(int(p) for p in RUNNING_MINOR.split("."))
    )
    assert there.python_version.startswith(other_python + ".")
    assert (
        run_python(there.python_path, "import sys, alpha; print('%d.%d' % sys.version_info[:2])")
        == other_python
    )


def test_add_update_remove_sync_export(manager: EnvManager) -> None:
    manager.create(KEY, packages=["alpha==1.0"])

    added = manager.add(KEY, ["gamma"])
    assert added.environment.generation == 2
    deps = manager.dependencies(KEY)
    assert deps.locked == {"alpha": "1.0", "gamma": "1.0"}
    assert any(d.startswith("gamma") for d in deps.declared)

    updated = manager.update(KEY, ["alpha>=2"])
    assert manager.dependencies(KEY).locked["alpha"] == "2.0"
    assert (
        run_python(updated.environment.python_path, "import alpha; print(alpha.__version__)")
        == "2.0"
    )

    removed = manager.remove(KEY, ["gamma"])
    assert "gamma" not in manager.dependencies(KEY).locked
    assert (
        run_python(
            removed.environment.python_path,
            "import importlib.util as u; print(u.find_spec('gamma'))",
        )
        == "None"
    )

    synced = manager.sync(KEY)
    assert synced.environment.generation == removed.environment.generation + 1

    exported = manager.export(KEY)
    assert "alpha" in exported.uv_lock
    assert "[tool.uv]" in exported.pyproject_toml
    assert "alpha==2.0" in manager.export(KEY, ExportFormat.REQUIREMENTS_TXT)
    assert 'name = "alpha"' in manager.export(KEY, ExportFormat.PYLOCK_TOML)


def test_update_picks_up_new_releases(
    settings: Settings, python_finder: PythonFinder, tmp_path: Path
) -> None:
    index_dir = tmp_path / "index"
    index_dir.mkdir()
    build_wheel(index_dir, "alpha", "1.0")
    build_wheel(index_dir, "gamma", "1.0")
    local = attrs.evolve(settings, index=IndexSettings(find_links=(str(index_dir),), no_index=True))
    manager = EnvManager(local, python_finder=python_finder)
    manager.create(KEY, packages=["alpha", "gamma"])
    build_wheel(index_dir, "alpha", "1.5")
    build_wheel(index_dir, "gamma", "1.5")

    manager.sync(KEY)  # sync follows the lock, never the index
    assert manager.dependencies(KEY).locked == {"alpha": "1.0", "gamma": "1.0"}
    manager.update(KEY, ["alpha"])  # one package
    assert manager.dependencies(KEY).locked == {"alpha": "1.5", "gamma": "1.0"}
    build_wheel(index_dir, "alpha", "1.6")
    manager.update(KEY)  # everything
    assert manager.dependencies(KEY).locked == {"alpha": "1.6", "gamma": "1.5"}
    assert (
        run_python(manager.get(KEY).python_path, "import alpha; print(alpha.__version__)") == "1.6"
    )
    # Nothing newer on the index: uv rewrites the lock byte for byte, so no new generation.
    generation = manager.get(KEY).generation
    for unchanged in (manager.update(KEY), manager.update(KEY, ["alpha"])):
        assert unchanged.changed is False
        assert unchanged.environment.generation == generation
    gens = [int(p.name) for p in (manager.get(KEY).env_path / "gens").iterdir()]
    assert max(gens) == generation


def test_a_failed_add_leaves_the_env_byte_identical(manager: EnvManager) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    before = tree_fingerprint(environment.env_path)

    with pytest.raises(ResolutionFailed) as caught:
        manager.add(KEY, ["does-not-exist"])
    assert caught.value.exit_code != 0
    assert "does-not-exist" in caught.value.stderr

    assert tree_fingerprint(environment.env_path) == before
    assert run_python(environment.python_path, "import alpha; print('ok')") == "ok"


def test_a_failed_conflicting_add_changes_nothing(manager: EnvManager) -> None:
    environment = manager.create(KEY, packages=["alpha>=2"])
    before = tree_fingerprint(environment.env_path)

    with pytest.raises(ResolutionFailed):
        manager.add(KEY, ["delta"])  # delta needs alpha<2

    assert tree_fingerprint(environment.env_path) == before
    failed = manager.operations(KEY.workflow_id, status="FAILED")
    assert failed.total == 1
    assert failed.items[0].operation == "add"
    assert failed.items[0].exit_code not in (None, 0)
    assert "alpha" in failed.items[0].stderr


def test_a_failed_create_is_rolled_back(manager: EnvManager) -> None:
    with pytest.raises(ResolutionFailed):
        manager.create(KEY, packages=["does-not-exist"])

    assert manager.status(KEY).status is EnvStatus.NOT_FOUND
    assert not manager._core.services.layout.env_dir(KEY).exists()
    assert list(manager._core.services.layout.trash_dir.iterdir()) == []
    record = manager.operations(KEY.workflow_id).items[0]
    assert (record.operation, record.status) == ("create", "FAILED")


def test_remove_of_an_undeclared_package_is_bad_input_and_changes_nothing(
    manager: EnvManager,
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    before = tree_fingerprint(environment.env_path)
    with pytest.raises(InvalidRequirement):
        manager.remove(KEY, ["gamma"])
    assert tree_fingerprint(environment.env_path) == before


def test_unknown_python_lists_what_was_found(manager: EnvManager) -> None:
    with pytest.raises(PythonNotFound) as caught:
        manager.create(KEY, packages=["alpha"], python="3.2")
    assert RUNNING_MINOR in ", ".join(caught.value.found)
    assert not manager._core.services.layout.env_dir(KEY).exists()


def test_a_process_on_the_pinned_interpreter_survives_a_generation_switch(
    manager: EnvManager,
) -> None:
    environment = manager.create(KEY, packages=["alpha==1.0"])
    code = (
        "import sys, alpha; print(alpha.__version__, flush=True); sys.stdin.readline(); "
        "import alpha; print(alpha.__version__, sys.prefix, flush=True)"
    )
    with subprocess.Popen(
        [str(environment.pinned_python_path), "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        assert process.stdin is not None
        assert process.stdout.readline().strip() == "1.0"
        manager.update(KEY, ["alpha==2.0"])
        process.stdin.write("\n")
        process.stdin.flush()
        line = process.stdout.readline().split()
        assert process.wait(timeout=30) == 0
    assert line[0] == "1.0"
    assert Path(line[1]) == environment.pinned_python_path.parent.parent
    assert (environment.pinned_python_path.parent.parent / "pyvenv.cfg").is_file()
    # The env itself now answers with the new generation.
    assert run_python(environment.python_path, "import alpha; print(alpha.__version__)") == "2.0"


def test_delete_twice_and_cleanup(manager: EnvManager) -> None:
    manager.create(KEY, packages=["alpha"])
    other = EnvKey("ml_pipeline", "rag", "v2")
    manager.create(other, packages=["alpha"])

    assert manager.cleanup(idle_seconds=3600).deleted == ()
    time.sleep(0.05)
    manager.runtime_env(other)  # a hand-out counts as use
    report = manager.cleanup(idle_seconds=0.03)
    assert report.deleted == (KEY,)
    assert manager.status(other).status is EnvStatus.READY

    assert manager.delete(other).status == "DELETED"
    assert manager.delete(other).status == "NOT_FOUND"
    with pytest.raises(EnvironmentNotFound):
        manager.get(other)


def test_cleanup_prunes_retired_generations(manager: EnvManager) -> None:
    manager.create(KEY, packages=["alpha"])
    manager.sync(KEY)
    manager.sync(KEY)
    env_dir = manager._core.services.layout.env_dir(KEY)
    assert sorted(p.name for p in (env_dir / "gens").iterdir()) == ["1", "2", "3"]
    time.sleep(0.05)
    manager.runtime_env(KEY)
    report = manager.cleanup(idle_seconds=0.02)
    assert report.deleted == ()
    assert report.pruned_generations == 2
    assert sorted(p.name for p in (env_dir / "gens").iterdir()) == ["3"]
    assert run_python(manager.get(KEY).python_path, "import alpha; print('ok')") == "ok"


def test_requirements_text(manager: EnvManager) -> None:
    text = b"# a comment\nalpha==1.0  # pinned\n\ngamma\n"
    environment = manager.create(KEY, requirements_text=text)
    assert manager.dependencies(KEY).locked == {"alpha": "1.0", "gamma": "1.0"}
    assert (
        manager.ensure(KEY, packages=["gamma", "alpha==1.0"]).generation == environment.generation
    )


def test_runtime_env_is_ready_for_ray(manager: EnvManager) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    runtime = manager.runtime_env(KEY)
    assert runtime["py_executable"] == str(environment.python_path)
    assert runtime["env_vars"] == {"VIRTUAL_ENV": str(environment.venv_path)}
    assert runtime["pinned_python_path"] == str(environment.pinned_python_path)


def test_events_of_a_lifecycle(manager: EnvManager, events: RecordingPublisher) -> None:
    manager.create(KEY, packages=["alpha"])
    manager.add(KEY, ["gamma"])
    with pytest.raises(ResolutionFailed):
        manager.add(KEY, ["nope"])
    manager.sync(KEY)
    manager.delete(KEY)
    assert events.names == [
        "EnvironmentCreationStarted",
        "EnvironmentCreated",
        "DependenciesAdded",
        "DependencyOperationFailed",
        "EnvironmentSynced",
        "EnvironmentDeleted",
    ]


def test_a_raising_publisher_never_breaks_an_operation(
    settings: Settings, python_finder: PythonFinder
) -> None:
    def explode(event: object) -> None:
        raise RuntimeError("subscriber bug")

    manager = EnvManager(settings, python_finder=python_finder, publish=explode)
    assert manager.create(KEY, packages=["alpha"]).status is EnvStatus.READY


def test_nothing_is_written_outside_the_root(manager: EnvManager, tmp_path: Path) -> None:
    # The uv cache is shared by the suite on purpose; everything else must be under the root.
    before = set(tmp_path.iterdir())
    manager.create(KEY, packages=["beta"])
    manager.add(KEY, ["gamma"])
    manager.delete(KEY)
    assert set(tmp_path.iterdir()) - before <= {manager.settings.root}
