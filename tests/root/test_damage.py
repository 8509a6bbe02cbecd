"""Damage stays where it happens (issue 9): unreadable records and damaged shared venvs.

A ``metadata.json`` that cannot be read quarantines its env: reported as
UNREADABLE everywhere, skipped by recover and cleanup, removed by delete, and
nothing else on the root notices. A file lost from a shared store venv marks
every env that links it, and one repair rebuilds the entry once for all.
Everything here goes through the public API and the CLI (gRPC: tests/server/).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import uv_envs
from uv_envs import EnvKey, EnvManager, EnvStatus, Settings, SubprocessUvExecutor
from uv_envs._cli.main import main as cli
from uv_envs._uv.executor import find_uv_binary
from uv_envs.testing import CountingExecutor

BAD = EnvKey("wf", "bad", "v1")
GOOD = EnvKey("wf", "good", "v1")


def _missing(path: Path) -> None:
    path.unlink()


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _not_json(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot json at all {")


def _wrong_schema(path: Path) -> None:
    raw = json.loads(path.read_bytes())
    raw["generation"] = "three"
    del raw["spec"]
    path.write_text(json.dumps(raw))


def _a_list(path: Path) -> None:
    path.write_text("[1, 2, 3]")


def _newer_schema(path: Path) -> None:
    raw = json.loads(path.read_bytes())
    raw["schema_version"] = 99
    raw["something_new"] = {"x": 1}
    path.write_text(json.dumps(raw))


def _another_envs_record(path: Path) -> None:
    other = path.parents[2] / "good" / "v1" / "metadata.json"
    path.write_bytes(other.read_bytes())


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (_missing, "missing"),
    "truncated": (_truncated, "truncated"),
    "empty": (_empty, "not JSON"),
    "not-json": (_not_json, "not JSON"),
    "wrong-schema": (_wrong_schema, "wrong schema"),
    "not-an-object": (_a_list, "wrong schema"),
    "newer-schema": (_newer_schema, "newer schema"),
    "another-envs-record": (_another_envs_record, "names env wf/good/v1"),
}


def _damage(manager: EnvManager, form: str) -> Path:
    """Create BAD and GOOD, then damage BAD's metadata in ``form``; return BAD's env dir."""
    manager.ensure(BAD, packages=["alpha"])
    manager.ensure(GOOD, packages=["alpha"])
    env_dir = manager.get(BAD).env_path
    DAMAGE[form][0](env_dir / "metadata.json")
    return env_dir


def _snapshot(env_dir: Path) -> dict[str, bytes | str]:
    """Every file's bytes and every link's target under an env dir."""
    found: dict[str, bytes | str] = {}
    for directory, dirs, files in os.walk(env_dir):
        for name in dirs + files:
            path = Path(directory) / name
            relative = str(path.relative_to(env_dir))
            if path.is_symlink():
                found[relative] = os.readlink(path)
            elif path.is_file():
                found[relative] = path.read_bytes()
    return found


@pytest.mark.parametrize("form", list(DAMAGE))
def test_an_unreadable_record_is_quarantined_and_nothing_else_notices(
    fake_manager: EnvManager, form: str
) -> None:
    env_dir = _damage(fake_manager, form)
    reason = DAMAGE[form][1]
    before = _snapshot(env_dir)

    report = fake_manager.status(BAD)
    assert report.status is EnvStatus.UNREADABLE
    assert report.error is not None
    assert reason in report.error
    assert fake_manager.status(GOOD).status is EnvStatus.READY

    listed = {str(e.key): e for e in fake_manager.list_environments()}
    assert set(listed) == {str(BAD), str(GOOD)}, "the damaged env must be listed, not omitted"
    assert listed[str(BAD)].status is EnvStatus.UNREADABLE
    assert reason in (listed[str(BAD)].error or "")
    assert listed[str(GOOD)].status is EnvStatus.READY
    assert [e.key for e in fake_manager.list_environments("wf", "bad")] == [BAD]

    verified = fake_manager.verify(BAD)
    assert not verified.ok
    assert any(reason in problem for problem in verified.problems)

    # recover() carries on past it, reports it (an audit row), and repairs nothing there.
    assert BAD not in fake_manager.recover()
    rows = fake_manager.operations("wf", "bad", status="FAILED").items
    assert any(r.operation == "recover" and reason in (r.error or "") for r in rows)

    for call in (
        lambda: fake_manager.ensure(BAD, packages=["alpha"]),
        lambda: fake_manager.create(BAD, packages=["alpha"]),
        lambda: fake_manager.add(BAD, ["gamma"]),
        lambda: fake_manager.sync(BAD),
        lambda: fake_manager.get(BAD),
        lambda: fake_manager.runtime_env(BAD),
    ):
        with pytest.raises(uv_envs.EnvironmentUnreadable, match="delete") as caught:
            call()
        assert isinstance(caught.value, uv_envs.StorageError)
        assert reason in str(caught.value)

    # Cleanup skips and reports it; the healthy, idle env goes as usual.
    cleaned = fake_manager.cleanup(idle_seconds=0)
    assert cleaned.skipped_unreadable == (BAD,)
    assert cleaned.deleted == (GOOD,)
    assert _snapshot(env_dir) == before, "the quarantined env was changed"

    # Delete removes it; then the key is an ordinary free key again.
    assert fake_manager.delete(BAD).status == "DELETED"
    assert not env_dir.exists()
    assert fake_manager.status(BAD).status is EnvStatus.NOT_FOUND
    assert fake_manager.ensure(BAD, packages=["alpha"]).status is EnvStatus.READY
    assert fake_manager.recover() == []


def test_a_leased_unreadable_env_needs_force(fake_manager: EnvManager) -> None:
    fake_manager.ensure(BAD, packages=["alpha"])
    with fake_manager.lease(BAD) as leased:
        _truncated(leased.env_path / "metadata.json")
        with pytest.raises(uv_envs.EnvironmentInUse):
            fake_manager.delete(BAD)
        assert fake_manager.delete(BAD, force=True).status == "DELETED"
    assert fake_manager.status(BAD).status is EnvStatus.NOT_FOUND


def test_an_interrupted_delete_is_still_debris_not_damage(fake_manager: EnvManager) -> None:
    # A delete renames the record away first, then the folder: dying in between leaves
    # generations without metadata.json, which recover() removes (it is no damage).
    environment = fake_manager.ensure(BAD, packages=["alpha"])
    fake_manager._core.services.metadata.discard(BAD)
    assert fake_manager.status(BAD).status is EnvStatus.NOT_FOUND
    assert fake_manager.recover() == [BAD]
    assert not environment.env_path.exists()


@pytest.mark.parametrize("form", ["truncated", "missing", "newer-schema"])
def test_the_cli_reports_and_deletes_an_unreadable_env(
    fake_manager: EnvManager, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _damage(fake_manager, form)
    root = ["--root", str(fake_manager.settings.root)]
    reason = DAMAGE[form][1]

    assert cli([*root, "status", "wf", "bad", "v1"]) == 0
    assert "UNREADABLE" in capsys.readouterr().out
    assert cli([*root, "--json", "list"]) == 0
    listed = {
        f"{e['workflow_id']}/{e['node_id']}/{e['version_id']}": e["status"]
        for e in json.loads(capsys.readouterr().out)
    }
    assert listed == {"wf/bad/v1": "UNREADABLE", "wf/good/v1": "READY"}
    assert cli([*root, "verify", "wf", "bad", "v1"]) == 1
    assert reason in capsys.readouterr().out
    assert cli([*root, "ensure", "wf", "bad", "v1", "-p", "alpha"]) == 5
    err = capsys.readouterr().err
    assert "delete" in err
    assert "--force" in err
    assert cli([*root, "recover"]) == 0
    capsys.readouterr()
    assert cli([*root, "delete", "wf", "bad", "v1", "--force"]) == 0
    assert "DELETED" in capsys.readouterr().out
    assert fake_manager.status(BAD).status is EnvStatus.NOT_FOUND
    assert fake_manager.status(GOOD).status is EnvStatus.READY


# --- damaged shared store entries (real uv) ----------------------------------------------

SPEC = ["beta", "gamma"]


@pytest.fixture
def counting() -> CountingExecutor:
    return CountingExecutor(SubprocessUvExecutor(find_uv_binary()))


@pytest.fixture
def shared(
    settings: Settings, python_finder: uv_envs.InterpreterFinder, counting: CountingExecutor
) -> EnvManager:
    return EnvManager(settings, executor=counting, python_finder=python_finder)


def _imports(environment: uv_envs.Environment) -> bool:
    completed = subprocess.run(
        [
            str(environment.python_path),
            "-c",
            "import alpha, beta, gamma; gamma.__version__, beta.__version__",
        ],
        capture_output=True,
        check=False,
    )
    return completed.returncode == 0


def _make_shared(manager: EnvManager, count: int) -> list[uv_envs.Environment]:
    envs = [manager.create(EnvKey("wf", f"n{i}", "v1"), packages=SPEC) for i in range(count)]
    venvs = {(e.env_path / ".venv").resolve() for e in envs}
    assert len(venvs) == 1, "the envs do not share one store venv"
    return envs


def _break_entry(environment: uv_envs.Environment) -> Path:
    """Delete one installed file from the shared venv; return the store entry."""
    venv = (environment.env_path / ".venv").resolve()
    module = next(venv.glob("lib/python*/site-packages/gamma/__init__.py"))
    module.unlink()
    return venv.parent


@pytest.mark.parametrize("count", [2, 3])
def test_verify_of_one_user_marks_every_user_and_repair_rebuilds_once(
    shared: EnvManager, counting: CountingExecutor, count: int
) -> None:
    envs = _make_shared(shared, count)
    entry = _break_entry(envs[0])
    assert not any(_imports(e) for e in envs)

    verified = shared.verify(envs[-1].key)
    assert not verified.ok
    for environment in envs:
        status = shared.status(environment.key)
        assert status.status is EnvStatus.DAMAGED, f"{environment.key} still says READY"
        if environment.key != envs[-1].key:  # the verified one says what verify found
            assert entry.name in (status.error or "")
        listed = shared.list_environments("wf", environment.key.node_id)
        assert [e.status for e in listed] == [EnvStatus.DAMAGED]
    with pytest.raises(uv_envs.EnvironmentNotReady):
        shared.runtime_env(envs[0].key)

    installs = counting.count("sync")
    repaired = shared.repair()
    assert set(repaired.repaired) == {e.key for e in envs}
    assert repaired.ok, repaired
    assert counting.count("sync") == installs + 1, "the entry was not rebuilt exactly once"
    after = [shared.get(e.key) for e in envs]
    new_venvs = {(e.env_path / ".venv").resolve() for e in after}
    assert len(new_venvs) == 1
    (new_venv,) = new_venvs
    assert new_venv.parent != entry, "the damaged entry was edited in place"
    assert new_venv.parent.name.startswith(entry.name + ".")
    for environment in after:
        assert environment.status is EnvStatus.READY
        assert shared.status(environment.key).status is EnvStatus.READY
        assert _imports(environment)
        assert shared.verify(environment.key).ok
    # The damaged entry is kept while a retired generation links it, then pruned.
    assert shared.verify_all().ok


@pytest.mark.parametrize("count", [2, 3])
def test_sync_of_one_user_repairs_every_user(shared: EnvManager, count: int) -> None:
    envs = _make_shared(shared, count)
    _break_entry(envs[0])
    # The operator's sequence from the issue: verify finds it on one key, sync repairs that key.
    assert not shared.verify(envs[0].key).ok
    shared.sync(envs[0].key)
    for environment in envs:
        now = shared.get(environment.key)
        assert now.status is EnvStatus.READY
        assert _imports(now), f"{environment.key} still links the damaged entry"
        assert shared.verify(environment.key).ok


@pytest.mark.parametrize("count", [2, 3])
def test_sync_without_a_verify_first_repairs_every_user(
    shared: EnvManager, counting: CountingExecutor, count: int
) -> None:
    envs = _make_shared(shared, count)
    entry = _break_entry(envs[0])
    installs = counting.count("sync")
    shared.sync(envs[0].key)  # nobody looked before: the sync checks the entry it shares
    assert counting.count("sync") == installs + 1, "the replacement was not built exactly once"
    after = [shared.get(e.key) for e in envs]
    venvs = {(e.env_path / ".venv").resolve().parent for e in after}
    assert len(venvs) == 1
    assert venvs != {entry}
    for environment in after:
        assert environment.status is EnvStatus.READY
        assert _imports(environment), f"{environment.key} still links the damaged entry"
        assert shared.verify(environment.key).ok


def test_sync_of_a_healthy_shared_env_marks_nobody(shared: EnvManager) -> None:
    envs = _make_shared(shared, 2)
    shared.sync(envs[0].key)
    other = shared.get(envs[1].key)
    assert other.status is EnvStatus.READY
    assert (other.env_path / ".venv").resolve() == (envs[1].env_path / ".venv").resolve()
    assert shared.verify_all().ok


def test_repair_of_one_key_repairs_the_other_users_of_its_entry(shared: EnvManager) -> None:
    envs = _make_shared(shared, 3)
    _break_entry(envs[0])
    report = shared.repair(envs[1].key)
    assert set(report.repaired) == {e.key for e in envs}
    assert all(_imports(shared.get(e.key)) for e in envs)


def test_verify_all_and_repair_from_the_cli(
    shared: EnvManager, capsys: pytest.CaptureFixture[str]
) -> None:
    envs = _make_shared(shared, 2)
    settings = shared.settings
    root = [
        "--root",
        str(settings.root),
        "--no-index",
        "--find-links",
        settings.index.find_links[0],
    ]
    assert cli([*root, "--json", "verify", "--all"]) == 0
    healthy = json.loads(capsys.readouterr().out)
    assert healthy["ok"] is True
    assert sorted(healthy["checked"]) == sorted(str(e.key) for e in envs)

    entry = _break_entry(envs[0])
    assert cli([*root, "--json", "verify", "--all"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["ok"] is False
    assert sorted(found["problems"]) == sorted(str(e.key) for e in envs)
    assert found["damaged_entries"] == [entry.name]

    assert cli([*root, "verify", "--repair", "wf", "n0", "v1"]) == 0
    capsys.readouterr()
    assert all(_imports(shared.get(e.key)) for e in envs)
    assert cli([*root, "repair"]) == 0
    assert cli([*root, "--json", "verify", "--all"]) == 0


def test_verify_and_verify_all_judge_a_lost_lock_alike(shared: EnvManager) -> None:
    """Verify and verify_all check a venv one way: a lost ``uv.lock`` is damage to both."""
    (environment,) = _make_shared(shared, 1)
    (environment.env_path / "current" / "uv.lock").unlink()

    verified = shared.verify(environment.key)
    assert not verified.ok
    assert [p.split(":")[0] for p in verified.problems] == ["uv.lock cannot be read"]
    assert shared.status(environment.key).status is EnvStatus.DAMAGED

    entry = (environment.env_path / ".venv").resolve().parent
    whole_root = shared.verify_all()
    prefix = f"shared venv store/{entry.name}: "
    assert whole_root.problems[str(environment.key)] == tuple(prefix + p for p in verified.problems)
    assert whole_root.damaged_entries == (entry.name,)


def test_a_lost_lock_is_a_typed_error_for_sync_and_repair_and_ensure_rebuilds(
    shared: EnvManager,
) -> None:
    """Nothing can be built from a lost uv.lock: sync says so, repair reports it, ensure heals."""
    (environment,) = _make_shared(shared, 1)
    key = environment.key
    (environment.env_path / "current" / "uv.lock").unlink()
    before = sorted(p.name for p in (environment.env_path / "gens").iterdir())

    with pytest.raises(uv_envs.StorageError, match=r"has lost its uv\.lock"):
        shared.sync(key)
    assert sorted(p.name for p in (environment.env_path / "gens").iterdir()) == before

    report = shared.repair(key)
    assert report.repaired == ()
    assert "has lost its uv.lock" in report.failed[str(key)]
    assert shared.status(key).status is EnvStatus.DAMAGED

    healed = shared.ensure(key, packages=SPEC)
    assert healed.status is EnvStatus.READY
    assert healed.generation == environment.generation + 1
    assert shared.verify(key).ok
