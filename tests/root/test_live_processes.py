"""Envs real processes use, without a lease, stay through cleanup and delete (issue 19).

Library and CLI here; gRPC and HTTP in tests/server/test_in_use_served.py. The fast
tests of the same rules, on ``FakeProcesses``, are in tests/core/test_in_use.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.env_users import EnvUsers, store_file
from uv_envs import Environment, EnvironmentInUse, EnvKey, EnvManager, Settings

KEY = EnvKey("ml_pipeline", "rag", "v1")

#: How each kind of user is started from a fresh env; returns its pid.
Start = Callable[[EnvUsers, Environment], int]
USERS: dict[str, Start] = {
    "interpreter": lambda users, env: users.interpreter(env.python_path),
    "cwd": lambda users, env: users.working_directory(env.env_path),
    "store_file": lambda users, env: users.open_file(store_file(env)),
    "mapped_store_file": lambda users, env: users.mapped_file(store_file(env)),
}


@pytest.fixture
def users() -> Iterator[EnvUsers]:
    started = EnvUsers()
    yield started
    started.stop_all()


@pytest.mark.parametrize("kind", USERS)
def test_cleanup_keeps_an_env_a_process_uses_until_it_exits(
    manager: EnvManager, users: EnvUsers, kind: str
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = USERS[kind](users, environment)

    report = manager.cleanup(0)

    assert report.deleted == ()
    assert report.pruned_store_entries == 0
    (in_use,) = report.skipped_in_use
    assert in_use.key == KEY
    assert [p.pid for p in in_use.processes] == [pid]
    assert (
        subprocess.run([environment.python_path, "-c", "import alpha"], check=False).returncode == 0
    )

    users.stop(pid)
    after = manager.cleanup(0)
    assert after.deleted == (KEY,)
    assert after.pruned_store_entries == 1
    assert not environment.env_path.exists()


@pytest.mark.parametrize("kind", USERS)
def test_delete_without_force_refuses_an_env_a_process_uses(
    manager: EnvManager, users: EnvUsers, kind: str
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = USERS[kind](users, environment)

    with pytest.raises(EnvironmentInUse, match=f"pid {pid}") as caught:
        manager.delete(KEY, if_unused=True)

    assert caught.value.pids == (pid,)
    assert manager.get(KEY).env_path.is_dir()
    users.stop(pid)
    assert manager.delete(KEY).status == "DELETED"


def test_the_old_generation_a_process_runs_from_stays_until_it_exits(
    manager: EnvManager, users: EnvUsers
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    first = environment.pinned_python_path
    pid = users.interpreter(first)

    manager.add(KEY, ["gamma"])
    report = manager.cleanup(0)

    assert report.pruned_generations == 0
    assert report.pruned_store_entries == 0
    assert subprocess.run([first, "-c", "import alpha"], check=False, timeout=60).returncode == 0
    users.stop(pid)
    after = manager.cleanup(0)
    assert after.pruned_generations == 1
    assert after.deleted == (KEY,)
    assert not first.parent.parent.exists()


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    base = [sys.executable, "-m", "uv_envs", "--root", str(settings.root), "--no-index"]
    links = [arg for link in settings.index.find_links for arg in ("--find-links", link)]
    return subprocess.run(
        [*base, *links, *args], capture_output=True, text=True, timeout=300, check=False
    )


def test_the_cli_reports_envs_in_use_and_refuses_to_delete_them(
    manager: EnvManager, users: EnvUsers
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = users.interpreter(environment.python_path)

    # No floor: only the process keeps the env.
    cleaned = cli(manager.settings, "cleanup", "--idle-hours", "0", "--min-idle-hours", "0")
    assert cleaned.returncode == 0, cleaned.stderr
    assert f"in use, skipped {KEY}: pid {pid} (" in cleaned.stdout
    as_json = json.loads(
        cli(
            manager.settings, "--json", "cleanup", "--idle-hours", "0", "--min-idle-hours", "0"
        ).stdout
    )
    assert as_json["deleted"] == []
    assert [p["pid"] for p in as_json["skipped_in_use"][0]["processes"]] == [pid]

    refused = cli(manager.settings, "delete", KEY.workflow_id, KEY.node_id, "v1")
    assert refused.returncode == 5
    assert f"pid {pid}" in refused.stderr
    assert Path(environment.env_path).is_dir()

    users.stop(pid)
    after = cli(manager.settings, "cleanup", "--idle-hours", "0", "--min-idle-hours", "0")
    assert after.returncode == 0, after.stderr
    deleted, summary = after.stdout.splitlines()
    assert deleted.startswith(f"deleted {KEY}: idle ")
    assert summary.startswith("deleted 1 envs (")
    assert not Path(environment.env_path).exists()


def test_a_forced_delete_goes_through_and_names_the_pids_it_overrode(
    manager: EnvManager, users: EnvUsers
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = users.open_file(store_file(environment))

    forced = cli(manager.settings, "delete", KEY.workflow_id, KEY.node_id, "v1", "--force")

    assert forced.returncode == 0, forced.stderr
    assert not environment.env_path.exists()
    (record,) = [r for r in manager.operations(KEY.workflow_id).items if r.operation == "delete"]
    assert record.metadata["overrode_pids"] == [pid]
    # The store entry whose file it holds open stays until it exits.
    kept = manager.cleanup(0)
    assert (kept.pruned_store_entries, kept.store_entries_in_use) == (0, 1)
    users.stop(pid)
    assert manager.cleanup(0).pruned_store_entries == 1
