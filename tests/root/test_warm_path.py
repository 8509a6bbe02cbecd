"""The warm path: a known spec whose venv is built costs no uv run and no lock parsing."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import attrs
import pytest

from uv_envs import EnvKey, EnvManager, Settings, SubprocessUvExecutor
from uv_envs._bytecode import compiler as compiler_module
from uv_envs._bytecode import worker
from uv_envs._bytecode.compiler import BackgroundCompiler
from uv_envs._models import IndexSettings
from uv_envs._store.layout import Layout
from uv_envs._store.provenance import (
    LockRecord,
    Provenance,
    ResolutionRecords,
    index_digest,
    project_digest,
)
from uv_envs._store.venvs import COMPILED
from uv_envs._uv.commands import UvInvocation
from uv_envs._uv.executor import UvResult, binary_identity, find_uv_binary
from uv_envs._uv.python import PythonFinder
from uv_envs.testing import (
    CountingExecutor,
    FakePythonFinder,
    FakeUvExecutor,
    RecordingCompiler,
)

SPEC = ["beta", "gamma"]
FAKE_SPEC = ["alpha", "beta"]


def fake_manager(
    root: Path,
    executor: FakeUvExecutor,
    *,
    compile_bytecode: bool = False,
    background_bytecode: bool = True,
) -> EnvManager:
    return EnvManager(
        Settings(
            root=root,
            lock_timeout=5,
            compile_bytecode=compile_bytecode,
            background_bytecode=background_bytecode,
        ),
        executor=executor,
        python_finder=FakePythonFinder(),
        compiler=RecordingCompiler(),
    )


def last_record(manager: EnvManager, key: EnvKey) -> dict[str, Any]:
    return dict(manager.operations(key.workflow_id, key.node_id, limit=1).items[0].metadata)


def compiler_of(manager: EnvManager) -> RecordingCompiler:
    compiler = manager._core.services.bytecode.compiler
    assert isinstance(compiler, RecordingCompiler)
    return compiler


def record_path(manager: EnvManager, key: EnvKey) -> Path:
    return ResolutionRecords(Layout(manager.settings.root)).path(manager.get(key).spec_hash)


def edit_record(manager: EnvManager, key: EnvKey, **changes: str) -> None:
    path = record_path(manager, key)
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


# --- no uv, no parsing ------------------------------------------------------------------


def test_a_known_spec_with_a_built_venv_runs_no_uv_command(tmp_path: Path) -> None:
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]})
    manager = fake_manager(tmp_path / "root", executor)
    first = manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    assert [c.args[0] for c in executor.calls] == ["lock", "sync"]

    second = manager.create(EnvKey("wf", "b"), packages=["BETA", "alpha"])

    assert [c.args[0] for c in executor.calls] == ["lock", "sync"], "the warm create ran uv"
    assert (second.env_path / ".venv").resolve() == (first.env_path / ".venv").resolve()
    details = last_record(manager, EnvKey("wf", "b"))
    assert (details["uv_runs"], details["resolved"], details["installed"]) == (0, False, False)
    assert last_record(manager, EnvKey("wf", "a"))["uv_runs"] == 2


def test_the_warm_path_does_not_parse_the_lock(tmp_path: Path) -> None:
    """A stored lock no TOML parser accepts, vouched for by its record, is linked as it is."""
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]})
    manager = fake_manager(tmp_path / "root", executor)
    first = manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    stored = Layout(manager.settings.root).stored_lock(first.spec_hash)
    unparsable = stored.read_bytes() + b"\nthis line = = is not TOML\n"
    stored.write_bytes(unparsable)
    edit_record(manager, first.key, lock_sha256=hashlib.sha256(unparsable).hexdigest())
    calls = len(executor.calls)

    second = manager.create(EnvKey("wf", "b"), packages=FAKE_SPEC)

    assert len(executor.calls) == calls
    assert (second.env_path / "uv.lock").read_bytes() == unparsable
    assert (second.env_path / ".venv").resolve() == (first.env_path / ".venv").resolve()


def test_real_uv_warm_create_runs_nothing(settings: Settings, python_finder: PythonFinder) -> None:
    counting = CountingExecutor(SubprocessUvExecutor(find_uv_binary()))
    manager = EnvManager(
        settings, executor=counting, python_finder=python_finder, compiler=RecordingCompiler()
    )
    manager.create(EnvKey("wf", "a"), packages=SPEC)
    calls = len(counting.calls)

    manager.create(EnvKey("wf", "b"), packages=SPEC)

    assert len(counting.calls) == calls
    assert last_record(manager, EnvKey("wf", "b"))["uv_runs"] == 0


# --- when the stored lock is not trusted ---------------------------------------------------


def test_a_lock_stored_by_another_uv_is_checked_then_trusted(tmp_path: Path) -> None:
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]})
    manager = fake_manager(tmp_path / "root", executor)
    manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    executor.version = "fake-uv 9.9.9"  # uv was upgraded

    manager.create(EnvKey("wf", "b"), packages=FAKE_SPEC)
    checks = [c for c in executor.calls if c.args[0] == "lock" and "--check" in c.args]
    assert len(checks) == 1, "a lock from another uv was reused without uv's check"
    assert "--offline" in checks[0].args
    assert last_record(manager, EnvKey("wf", "b"))["uv_runs"] == 1
    assert json.loads(record_path(manager, EnvKey("wf", "b")).read_text())["uv"] == "fake-uv 9.9.9"

    calls = len(executor.calls)
    manager.create(EnvKey("wf", "c"), packages=FAKE_SPEC)
    assert len(executor.calls) == calls, "the check passed, so the new uv's record vouches now"


def test_an_executor_that_cannot_name_its_uv_is_always_checked(tmp_path: Path) -> None:
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]}, version=None)
    manager = fake_manager(tmp_path / "root", executor)
    manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    manager.create(EnvKey("wf", "b"), packages=FAKE_SPEC)
    manager.create(EnvKey("wf", "c"), packages=FAKE_SPEC)
    checks = [c for c in executor.calls if c.args[0] == "lock" and "--check" in c.args]
    assert len(checks) == 2
    assert not record_path(manager, EnvKey("wf", "a")).exists()


@pytest.mark.parametrize("field", ["index", "project", "lock_sha256"])
def test_a_record_for_other_index_settings_project_or_bytes_is_not_trusted(
    tmp_path: Path, field: str
) -> None:
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]})
    manager = fake_manager(tmp_path / "root", executor)
    manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    edit_record(manager, EnvKey("wf", "a"), **{field: "0" * 64})

    manager.create(EnvKey("wf", "b"), packages=FAKE_SPEC)

    checks = [c for c in executor.calls if c.args[0] == "lock" and "--check" in c.args]
    assert len(checks) == 1


def test_a_failed_check_resolves_again_and_records_the_new_lock(tmp_path: Path) -> None:
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]})
    manager = fake_manager(tmp_path / "root", executor)
    manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    executor.version = "fake-uv 9.9.9"
    executor.fail_next("lock", "error: the lockfile needs to be updated", exit_code=1)

    manager.create(EnvKey("wf", "b"), packages=FAKE_SPEC)

    assert [c.args[0] for c in executor.calls].count("lock") == 3  # lock, failed check, lock
    assert last_record(manager, EnvKey("wf", "b"))["resolved"] is True
    calls = len(executor.calls)
    manager.create(EnvKey("wf", "c"), packages=FAKE_SPEC)
    assert len(executor.calls) == calls


def test_real_uv_identity_changes_with_the_binary(tmp_path: Path) -> None:
    copy = tmp_path / "uv"
    shutil.copy2(find_uv_binary(), copy)
    before = binary_identity(str(copy))
    assert before is not None
    assert before == SubprocessUvExecutor(str(copy)).identity()
    copy.write_bytes(copy.read_bytes() + b"\0")  # another build of uv at the same path
    assert binary_identity(str(copy)) not in {None, before}
    assert binary_identity(str(tmp_path / "missing")) is None


def test_a_record_vouches_only_for_its_own_circumstances() -> None:
    lock = b"version = 1\n"
    here = Provenance(
        uv="uv 1", index=index_digest(IndexSettings()), project=project_digest(("a",), "3.11")
    )
    record = LockRecord(
        hashlib.sha256(lock).hexdigest(), "p" * 64, "uv 1", here.index, here.project
    )
    assert record.vouches_for(lock, here)
    assert not record.vouches_for(lock + b" ", here)
    assert not record.vouches_for(lock, attrs.evolve(here, uv="uv 2"))
    assert not record.vouches_for(lock, attrs.evolve(here, uv=None))
    offline = index_digest(IndexSettings(offline=True))
    assert not record.vouches_for(lock, attrs.evolve(here, index=offline))
    other = project_digest(("a", "b"), "3.11")
    assert not record.vouches_for(lock, attrs.evolve(here, project=other))
    # Order and spelling do not change the project uv checks against.
    assert project_digest(("B", "a"), "3.11") == project_digest(("a", "b"), "3.11")
    assert project_digest(("a",), "3.12") != project_digest(("a",), "3.11")


def test_an_unreadable_record_is_no_record(tmp_path: Path) -> None:
    records = ResolutionRecords(Layout(tmp_path))
    assert records.get("x") is None
    records.path("x").parent.mkdir(parents=True)
    records.path("x").write_text("{not json")
    assert records.get("x") is None
    records.path("x").write_text(json.dumps({"lock_sha256": 1}))
    assert records.get("x") is None


# --- a stored lock whose venv is not built ------------------------------------------------


def test_a_stored_lock_on_a_root_without_its_venv_costs_one_sync(tmp_path: Path) -> None:
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]})
    first = fake_manager(tmp_path / "a", executor)
    first.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    shutil.copytree(Layout(first.settings.root).lockstore_dir, tmp_path / "b" / "lockstore")
    second = fake_manager(tmp_path / "b", executor)
    calls = len(executor.calls)

    second.create(EnvKey("wf", "a"), packages=FAKE_SPEC)

    assert [c.args[0] for c in executor.calls[calls:]] == ["sync"]
    assert last_record(second, EnvKey("wf", "a"))["uv_runs"] == 1


def test_real_uv_stored_lock_without_venv_costs_one_sync(
    settings: Settings, python_finder: PythonFinder, tmp_path: Path
) -> None:
    counting = CountingExecutor(SubprocessUvExecutor(find_uv_binary()))
    first = EnvManager(settings, executor=counting, python_finder=python_finder)
    first.create(EnvKey("wf", "a"), packages=SPEC)
    other = attrs.evolve(settings, root=tmp_path / "other-root")
    shutil.copytree(Layout(first.settings.root).lockstore_dir, other.root / "lockstore")
    second = EnvManager(other, executor=counting, python_finder=python_finder)
    calls = len(counting.calls)

    environment = second.create(EnvKey("wf", "a"), packages=SPEC)

    assert [c.args[0] for c in counting.calls[calls:]] == ["sync"]
    completed = subprocess.run([str(environment.python_path), "-c", "import beta"], check=False)
    assert completed.returncode == 0


# --- bytecode after the create ------------------------------------------------------------


def test_a_create_returns_before_its_entry_is_compiled_and_the_compile_covers_it(
    settings: Settings, python_finder: PythonFinder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # More new modules than a create compiles itself (the test wheels are a few files,
    # a real set hundreds): what the root has not compiled yet is left to the compiler.
    monkeypatch.setattr(compiler_module, "INLINE_FILES", 0)
    manager = EnvManager(
        attrs.evolve(settings, background_bytecode=True),
        python_finder=python_finder,
        compiler=RecordingCompiler(),
    )
    environment = manager.create(EnvKey("wf", "a"), packages=SPEC)
    compiler = compiler_of(manager)
    entry = (environment.env_path / ".venv").resolve().parent

    # The create has returned; its entry is handed to the compiler, not compiled yet.
    assert [job.venv for job in compiler.jobs] == [entry / ".venv"]
    details = last_record(manager, environment.key)
    assert (details["bytecode"], details["compiled"]) == ("scheduled", False)
    sources = worker.sources(str(entry / ".venv"))
    assert sources
    code = "import importlib.util, sys; print(importlib.util.cache_from_source(sys.argv[1]))"
    python = str(environment.python_path)

    def pyc(source: str) -> Path:
        completed = subprocess.run(
            [python, "-I", "-c", code, source], capture_output=True, text=True, check=True
        )
        return Path(completed.stdout.strip())

    assert not all(pyc(s).is_file() for s in sources)

    assert compiler.run_all() == [worker.COMPILED]

    assert all(pyc(s).is_file() for s in sources)
    manager.create(EnvKey("wf", "b"), packages=SPEC)
    details = last_record(manager, EnvKey("wf", "b"))
    assert (details["bytecode"], details["compiled"], details["uv_runs"]) == ("compiled", True, 0)
    assert compiler.jobs == [], "an entry already compiled was handed to the compiler again"


def test_an_entry_not_compiled_yet_is_handed_on_by_the_next_create(tmp_path: Path) -> None:
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]})
    manager = fake_manager(tmp_path / "root", executor)
    manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    compiler_of(manager).jobs.clear()  # the worker of the first create died, say
    manager.ensure(EnvKey("wf", "a"), packages=FAKE_SPEC)  # reused
    manager.create(EnvKey("wf", "b"), packages=FAKE_SPEC)  # warm
    jobs = compiler_of(manager).jobs
    assert len(jobs) == 2
    assert len({job.venv for job in jobs}) == 1
    assert last_record(manager, EnvKey("wf", "a"))["bytecode"] == "scheduled"


@pytest.mark.parametrize(
    ("compile_bytecode", "background_bytecode", "state"),
    [(True, True, "install-time"), (False, False, "off")],
)
def test_no_background_compile_when_uv_compiled_or_when_turned_off(
    tmp_path: Path, compile_bytecode: bool, background_bytecode: bool, state: str
) -> None:
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]})
    manager = fake_manager(
        tmp_path / "root",
        executor,
        compile_bytecode=compile_bytecode,
        background_bytecode=background_bytecode,
    )
    manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    manager.create(EnvKey("wf", "b"), packages=FAKE_SPEC)
    assert compiler_of(manager).jobs == []
    details = last_record(manager, EnvKey("wf", "b"))
    assert details["bytecode"] == state
    assert details["compiled"] is (state == "install-time")
    compile_flags = ["--compile-bytecode" in c.args for c in executor.calls if c.args[0] == "sync"]
    assert compile_flags == [state == "install-time"]


def test_a_private_venv_is_not_compiled_in_the_background(tmp_path: Path) -> None:
    executor = FakeUvExecutor({"alpha": ["1.0"], "beta": ["1.0"]})
    manager = fake_manager(tmp_path / "root", executor)
    manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    compiler_of(manager).jobs.clear()
    manager.sync(EnvKey("wf", "a"))
    assert compiler_of(manager).jobs == []
    assert last_record(manager, EnvKey("wf", "a"))["bytecode"] == "off"


def test_the_switch_is_read_from_the_environment(tmp_path: Path) -> None:
    base = {"UV_ENVS_ROOT": str(tmp_path)}
    assert Settings.from_env(base).background_bytecode is True
    off = Settings.from_env({**base, "UV_ENVS_BACKGROUND_BYTECODE": "0"})
    assert off.background_bytecode is False
    on = Settings.from_env({**base, "UV_ENVS_BACKGROUND_BYTECODE": "true"})
    assert on.background_bytecode is True


def test_the_default_compiler_compiles_each_new_entry_once(
    settings: Settings, python_finder: PythonFinder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compiler_module, "INLINE_FILES", 0)  # as in a real set: see above
    manager = EnvManager(
        attrs.evolve(settings, background_bytecode=True), python_finder=python_finder
    )
    compiler = manager._core.services.bytecode.compiler
    assert isinstance(compiler, BackgroundCompiler)
    environment = manager.create(EnvKey("wf", "a"), packages=SPEC)
    compiler.wait()
    entry = (environment.env_path / ".venv").resolve().parent
    assert compiler.outcomes[entry / ".venv"] == worker.COMPILED
    assert (entry / COMPILED).is_file()

    manager.create(EnvKey("wf", "b"), packages=SPEC)
    details = last_record(manager, EnvKey("wf", "b"))
    assert (details["bytecode"], details["compiled"], details["uv_runs"]) == ("compiled", True, 0)


def test_a_create_that_runs_uv_records_creating_before_uv_starts(tmp_path: Path) -> None:
    """The CREATING record (status, crash recovery) is on disk before uv starts."""
    seen: list[str] = []

    class Watching(FakeUvExecutor):
        def run(self, invocation: UvInvocation) -> UvResult:
            metadata = tmp_path / "root" / "envs" / "wf" / "a" / "@" / "metadata.json"
            seen.append(json.loads(metadata.read_text())["status"])
            return super().run(invocation)

    manager = fake_manager(tmp_path / "root", Watching({"alpha": ["1.0"], "beta": ["1.0"]}))
    manager.create(EnvKey("wf", "a"), packages=FAKE_SPEC)
    assert seen == ["CREATING", "CREATING"]  # uv lock, uv sync
