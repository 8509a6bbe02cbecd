"""Cleanup and delete against processes that use an env (declared to ``FakeProcesses``).

The real ``/proc`` scan, with real processes, is tested in tests/root/test_live_processes.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from uv_envs import (
    EnvironmentInUse,
    EnvKey,
    EnvManager,
    LiveProcess,
    OperationStatus,
    ProcessUse,
    ProcessView,
    Settings,
)
from uv_envs._procs.liveness import LiveUses
from uv_envs._store.layout import Layout
from uv_envs._store.venvs import linked_entry
from uv_envs.testing import FakeProcesses, FakePythonFinder, FakeUvExecutor

from .conftest import KEY, generations, snapshot


@pytest.fixture
def processes() -> FakeProcesses:
    return FakeProcesses()


@pytest.fixture
def manager(tmp_path: Path, fake_uv: FakeUvExecutor, processes: FakeProcesses) -> EnvManager:
    return EnvManager(
        Settings(root=tmp_path / "root", lock_timeout=5),
        executor=fake_uv,
        python_finder=FakePythonFinder(),
        processes=processes,
    )


def store_entry(manager: EnvManager, key: EnvKey) -> Path:
    environment = manager.get(key)
    gen_dir = environment.env_path / "gens" / str(environment.generation)
    entry = linked_entry(manager.settings.root / "store", gen_dir)
    assert entry is not None
    return entry


def test_cleanup_keeps_an_env_whose_interpreter_runs_and_reports_the_process(
    manager: EnvManager, processes: FakeProcesses
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = processes.start(environment.python_path, command="python -m node.main")

    report = manager.cleanup(0)

    assert report.deleted == ()
    assert [u.key for u in report.skipped_in_use] == [KEY]
    (process,) = report.skipped_in_use[0].processes
    assert process.pid == pid
    assert process.description == "python -m node.main: runs its interpreter"
    assert report.pruned_store_entries == 0
    assert manager.get(KEY).python_path.parent.is_dir()
    (record,) = [r for r in manager.operations(KEY.workflow_id).items if r.operation == "cleanup"]
    assert record.status is OperationStatus.SUCCESS
    assert record.metadata["outcome"] == "skipped_in_use"
    assert record.metadata["pids"] == [pid]

    processes.stop(pid)
    again = manager.cleanup(0)
    assert again.deleted == (KEY,)
    assert again.skipped_in_use == ()
    assert again.pruned_store_entries == 1


@pytest.mark.parametrize(
    "use", [ProcessUse.WORKING_DIRECTORY, ProcessUse.VIRTUAL_ENV, ProcessUse.COMMAND_LINE]
)
def test_any_use_of_the_env_folder_keeps_it(
    manager: EnvManager, processes: FakeProcesses, use: ProcessUse
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    processes.start(environment.env_path / "data", use=use)

    assert [u.key for u in manager.cleanup(0).skipped_in_use] == [KEY]
    assert manager.get(KEY).env_path.is_dir()


def test_a_file_of_its_store_entry_open_keeps_the_env_and_the_entry(
    manager: EnvManager, processes: FakeProcesses
) -> None:
    manager.create(KEY, packages=["alpha"])
    entry = store_entry(manager, KEY)
    pid = processes.start(entry / ".venv" / "pyvenv.cfg", use=ProcessUse.OPEN_FILE)

    report = manager.cleanup(0)

    assert [u.key for u in report.skipped_in_use] == [KEY]
    assert entry.is_dir()
    # Forced out of the root, the env goes; the entry its process reads stays.
    manager.delete(KEY, force=True)
    kept = manager.cleanup(0)
    assert kept.pruned_store_entries == 0
    assert kept.store_entries_in_use == 1
    assert entry.is_dir()
    processes.stop(pid)
    assert manager.cleanup(0).pruned_store_entries == 1
    assert not entry.exists()


def test_a_process_outside_the_root_changes_nothing(
    manager: EnvManager, processes: FakeProcesses, tmp_path: Path
) -> None:
    manager.create(KEY, packages=["alpha"])
    processes.start(tmp_path / "elsewhere" / "python")
    assert manager.cleanup(0).deleted == (KEY,)


def test_delete_refuses_an_env_in_use_naming_the_processes_and_changes_nothing(
    manager: EnvManager, processes: FakeProcesses
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    before = snapshot(environment.env_path)
    pid = processes.start(environment.env_path, use=ProcessUse.WORKING_DIRECTORY, command="bash")

    with pytest.raises(EnvironmentInUse, match=rf"pid {pid}: bash: has its working") as caught:
        manager.delete(KEY, if_unused=True)

    assert caught.value.pids == (pid,)
    assert snapshot(environment.env_path) == before
    assert [r.operation for r in manager.operations(KEY.workflow_id).items] == ["create"]


def test_forced_delete_removes_an_env_in_use_and_audits_the_pids_it_overrode(
    manager: EnvManager, processes: FakeProcesses
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = processes.start(environment.python_path)

    manager.delete(KEY, force=True)

    assert not environment.env_path.exists()
    (record,) = [r for r in manager.operations(KEY.workflow_id).items if r.operation == "delete"]
    assert record.metadata["forced"] is True
    assert record.metadata["overrode_pids"] == [pid]


def test_delete_scans_once_and_cleanup_once_whatever_the_number_of_envs(
    manager: EnvManager, processes: FakeProcesses
) -> None:
    for version in ("v1", "v2", "v3"):
        manager.create(EnvKey("wf", "node", version), packages=["alpha"])
    assert len(manager.cleanup(0).deleted) == 3
    assert processes.scans == 1
    manager.delete(EnvKey("wf", "node", "v1"))
    assert processes.scans == 1  # nothing to delete, nothing to scan for
    manager.create(KEY, packages=["alpha"])
    manager.delete(KEY)
    assert processes.scans == 2


def test_a_retired_generation_a_process_runs_from_stays_until_it_exits(
    manager: EnvManager, processes: FakeProcesses
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = processes.start(environment.pinned_python_path)
    manager.add(KEY, ["beta"])
    env_dir = environment.env_path
    # Started after the switch, through the top-level link: it runs generation 2 only.
    later = processes.start(environment.python_path, started_at=time.time() + 2)

    report = manager.cleanup(0)

    assert report.pruned_generations == 0
    assert generations(env_dir) == ["1", "2"]
    processes.stop(pid)
    report = manager.cleanup(0)
    assert report.pruned_generations == 1
    assert generations(env_dir) == ["2"]
    assert [u.key for u in report.skipped_in_use] == [KEY]
    processes.stop(later)


def test_a_process_started_through_the_top_level_link_before_a_switch_keeps_the_old_generation(
    manager: EnvManager, processes: FakeProcesses
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    processes.start(environment.python_path, started_at=environment.created_at - 1)
    manager.add(KEY, ["beta"])

    assert manager.cleanup(0).pruned_generations == 0
    assert generations(environment.env_path) == ["1", "2"]


def test_leases_and_busy_envs_are_reported_as_before(
    manager: EnvManager, processes: FakeProcesses
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    processes.start(environment.python_path)
    with manager.lease(KEY):
        report = manager.cleanup(0)
    assert report.skipped_leased == (KEY,)
    assert report.skipped_in_use == ()


def test_uses_are_filed_by_env_generation_and_store_entry(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    key = EnvKey("wf", "node", "")
    env_dir = layout.env_dir(key)
    view = ProcessView(
        pid=7,
        command="python",
        started_at=0.0,
        uses=(
            (str(env_dir / "gens" / "3" / ".venv" / "bin" / "python"), ProcessUse.INTERPRETER),
            (str(layout.store_dir / "abc" / ".venv" / "x.so"), ProcessUse.MAPPED_FILE),
            (str(layout.locks_dir / "x.lock"), ProcessUse.OPEN_FILE),
            (str(tmp_path.parent / "other"), ProcessUse.OPEN_FILE),
        ),
    )

    uses = LiveUses.of(layout, [view])

    assert uses.by_env == {key: [(view, 3)]}
    assert uses.entries == frozenset({"abc"})
    expected = LiveProcess(7, "python: has a file of it mapped, runs its interpreter")
    assert uses.generation(key, 3, retired_at=1.0) == (expected,)
    assert uses.generation(key, 2, retired_at=1.0) == ()
