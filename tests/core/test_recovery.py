"""Recovery (``_core.recovery``): what a dead process left is repaired by ``recover()``
and by the next operation under the env's lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs

from uv_envs import EnvKey, EnvManager, EnvStatus
from uv_envs.testing import RecordingPublisher

from .conftest import KEY, current, env_dirs_under, generations, held_in_another_thread


def test_status_rolls_back_a_create_whose_process_died(
    fake_manager: EnvManager, events: RecordingPublisher
) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    fake_manager._core.services.metadata.save(attrs.evolve(environment, status=EnvStatus.CREATING))
    del events.events[:]

    # Until someone looks under the lock, a list shows the dead create as FAILED.
    listed = fake_manager.list_environments()
    assert [(e.key, e.status) for e in listed] == [(KEY, EnvStatus.FAILED)]

    report = fake_manager.status(KEY)

    assert report.status is EnvStatus.NOT_FOUND
    assert not environment.env_path.exists()
    assert env_dirs_under(fake_manager.settings.root) == []
    assert events.names == ["EnvironmentCreationFailed"]
    assert fake_manager.list_environments() == []


def test_a_create_whose_process_still_holds_the_lock_is_left_alone(
    fake_manager: EnvManager,
) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    fake_manager._core.services.metadata.save(attrs.evolve(environment, status=EnvStatus.CREATING))

    with held_in_another_thread(fake_manager._core.services.layout.lock_file(KEY)):
        assert fake_manager.status(KEY).status is EnvStatus.CREATING
        assert fake_manager.recover() == []
        assert [e.status for e in fake_manager.list_environments()] == [EnvStatus.CREATING]
        assert environment.env_path.exists()

    assert fake_manager.status(KEY).status is EnvStatus.NOT_FOUND


def test_recover_rolls_back_a_dead_create(fake_manager: EnvManager) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    other = fake_manager.create(EnvKey("wf", "n"), packages=["alpha"])
    fake_manager._core.services.metadata.save(attrs.evolve(environment, status=EnvStatus.CREATING))

    assert fake_manager.recover() == [KEY]

    assert not environment.env_path.exists()
    assert fake_manager.get(other.key) == other
    assert fake_manager.recover() == []
    assert fake_manager.create(KEY, packages=["alpha"]).generation == 1


def test_recover_removes_a_create_that_died_before_its_first_metadata_write(
    fake_manager: EnvManager,
) -> None:
    kept = fake_manager.create(EnvKey("wf", "kept"), packages=["alpha"])
    # _build_new makes the env dir, then writes metadata.json: a crash in between
    # leaves a directory that no record names, at most with the temp file of the
    # write. (Generations come after the first write: a folder with generations
    # and no record lost it, and is quarantined instead; see tests/root/test_damage.py.)
    env_dir = fake_manager._core.services.layout.env_dir(KEY)
    env_dir.mkdir(parents=True)
    (env_dir / ".metadata.json.abc.tmp").write_text('{"schema_version"')
    assert fake_manager.status(KEY).status is EnvStatus.NOT_FOUND

    fake_manager.recover()

    assert not env_dir.exists(), "recover() left the debris of a dead create"
    assert fake_manager.get(kept.key) == kept


def half_built_generation(manager: EnvManager) -> tuple[Any, Path]:
    """A READY env at generation 1 whose add died after writing part of generation 2."""
    environment = manager.create(KEY, packages=["alpha"])
    gen_dir = manager._core.services.layout.generation_dir(environment.env_path, 2)
    (gen_dir / ".venv" / "lib").mkdir(parents=True)
    (gen_dir / "pyproject.toml").write_text("[project]\n")
    manager._core.services.metadata.save(attrs.evolve(environment, pending_generation=2))
    return environment, gen_dir


def test_recover_removes_a_half_built_generation(fake_manager: EnvManager) -> None:
    environment, gen_dir = half_built_generation(fake_manager)

    assert fake_manager.status(KEY).status is EnvStatus.READY
    assert fake_manager.recover() == [KEY]

    assert not gen_dir.exists()
    assert generations(environment.env_path) == ["1"]
    assert fake_manager.get(KEY) == environment
    assert current(environment.env_path) == "gens/1"
    assert fake_manager.recover() == []


def test_the_next_operation_removes_a_half_built_generation(fake_manager: EnvManager) -> None:
    environment, _ = half_built_generation(fake_manager)

    added = fake_manager.add(KEY, ["gamma"]).environment

    assert added.generation == 2
    assert added.pending_generation is None
    assert fake_manager.export(KEY).pyproject_toml.startswith("[project]\nname = ")
    assert fake_manager.dependencies(KEY).locked == {"alpha": "2.0", "gamma": "1.0"}
    assert generations(environment.env_path) == ["1", "2"]


def test_recover_removes_generations_no_record_knows(fake_manager: EnvManager) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    stray = fake_manager._core.services.layout.generation_dir(environment.env_path, 7)
    stray.mkdir(parents=True)
    (stray / "uv.lock").write_text("")

    repaired = fake_manager.recover()

    assert generations(environment.env_path) == ["1"]
    assert repaired == [KEY], "recover() must report the env it repaired"


def test_recover_repoints_current_after_a_crash_past_the_commit_point(
    fake_manager: EnvManager,
) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    committed = fake_manager.add(KEY, ["gamma"]).environment
    env_dir = committed.env_path
    # The process died between writing metadata (generation 2) and switching the link.
    temporary = env_dir / "current.tmp"
    os.symlink("gens/1", temporary)
    os.replace(temporary, env_dir / "current")
    assert (env_dir / "uv.lock").resolve().parent.name == "1"

    repaired = fake_manager.recover()

    assert current(env_dir) == "gens/2"
    assert (env_dir / "uv.lock").resolve().parent.name == "2"
    assert fake_manager.dependencies(KEY).locked == {"alpha": "2.0", "gamma": "1.0"}
    assert fake_manager.get(KEY) == committed
    assert repaired == [KEY], "recover() must report the env whose link it repaired"


def test_the_next_operation_repoints_current(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    fake_manager.add(KEY, ["gamma"])
    env_dir = fake_manager._core.services.layout.env_dir(KEY)
    os.symlink("gens/1", env_dir / "current.tmp")
    os.replace(env_dir / "current.tmp", env_dir / "current")

    synced = fake_manager.sync(KEY).environment

    assert synced.generation == 3
    assert current(env_dir) == "gens/3"
    assert fake_manager.dependencies(KEY).locked == {"alpha": "2.0", "gamma": "1.0"}


def test_recover_empties_the_trash(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    trash = fake_manager._core.services.layout.trash_dir
    (trash / "abc" / "gens" / "1").mkdir(parents=True)
    (trash / "abc" / "gens" / "1" / "uv.lock").write_text("x")
    (trash / "loose-file").write_text("x")
    # _discard renames a symlinked env dir into the trash as it is.
    os.symlink(fake_manager._core.services.layout.env_dir(KEY), trash / "a-symlinked-env-dir")

    fake_manager.recover()

    assert list(trash.iterdir()) == []
    assert fake_manager.status(KEY).status is EnvStatus.READY
    assert fake_manager.get(KEY).python_path.exists(), "emptying the trash followed a link"


def test_recover_closes_audit_records_of_dead_processes(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    code = (
        "import sys; from pathlib import Path; from uv_envs import EnvKey; "
        "from uv_envs._audit.sqlite import SqliteAuditLog; "
        "print(SqliteAuditLog(Path(sys.argv[1])).start(EnvKey('wf', 'dead'), 'add'))"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code, str(fake_manager._core.services.layout.audit_db)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    dead_id = int(completed.stdout)
    live_id = fake_manager._core.services.audit.start(EnvKey("wf", "live"), "add")

    fake_manager.recover()

    records = {r.id: r for r in fake_manager.operations(limit=100).items}
    dead = records[dead_id]
    assert dead.status == "FAILED"
    assert dead.finished_at is not None
    assert "interrupted" in (dead.error or "")
    assert records[live_id].status == "RUNNING"
    assert fake_manager.operations(status="RUNNING").total == 1
