"""Background bytecode compilation of store entries, on real uv and real interpreters."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from uv_envs import EnvKey, EnvManager, Settings
from uv_envs._bytecode import worker
from uv_envs._bytecode.compiler import BackgroundCompiler, CompileJob, entry_job
from uv_envs._locks import locks as _locking
from uv_envs._store.layout import Layout
from uv_envs._uv.python import PythonFinder

SPEC = ["beta", "gamma", "delta"]  # four packages: alpha<2, beta, gamma, delta
MODULES = ("alpha", "beta", "gamma", "delta")


@pytest.fixture
def quiet_settings(settings: Settings) -> Settings:
    """The suite's settings without the background compiler: these tests run it themselves."""
    return attrs.evolve(settings, background_bytecode=False, max_concurrent_installs=1)


@contextlib.contextmanager
def held_by_another_thread(path: Path) -> Iterator[None]:
    """Hold a lock from another thread (this thread's own hold would let it re-enter)."""
    taken, done = threading.Event(), threading.Event()

    def hold() -> None:
        with _locking.hold(path, timeout=5, what="test"):
            taken.set()
            done.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait()
    try:
        yield
    finally:
        done.set()
        thread.join()


def build_entry(
    settings: Settings, python_finder: PythonFinder, python: str | None = None
) -> tuple[EnvManager, Path]:
    manager = EnvManager(settings, python_finder=python_finder)
    environment = manager.create(EnvKey("wf", "compiled"), packages=SPEC, python=python)
    return manager, (environment.env_path / ".venv").resolve().parent


def job_for(manager: EnvManager, entry: Path, **changes: object) -> CompileJob:
    job = entry_job(Layout(manager.settings.root), entry, manager.settings.max_concurrent_installs)
    return attrs.evolve(job, **changes)  # type: ignore[arg-type]


def job_dict(job: CompileJob) -> dict[str, object]:
    loaded: dict[str, object] = json.loads(job.as_json())
    return loaded


def interpreter_facts(python: Path) -> tuple[str, list[str]]:
    """The interpreter's cache tag and the .pyc path it expects for each source of the venv."""
    code = (
        "import importlib.util, json, sys; "
        "print(json.dumps([sys.implementation.cache_tag, "
        "[importlib.util.cache_from_source(p) for p in json.loads(sys.argv[1])]]))"
    )
    sources = worker.sources(str(python.parent.parent))
    completed = subprocess.run(
        [str(python), "-I", "-c", code, json.dumps(sources)],
        capture_output=True,
        text=True,
        check=True,
    )
    tag, expected = json.loads(completed.stdout)
    return tag, expected


def flock_holders(path: Path) -> set[int]:
    """Pids holding a flock on ``path``, read from /proc/locks (which takes no lock itself)."""
    try:
        inode = path.stat().st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return set()
    holders = set()
    for line in lines:
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            holders.add(int(fields[4]))
    return holders


def missing_pycs(venv: Path) -> list[str]:
    _, expected = interpreter_facts(venv / "bin" / "python")
    return [path for path in expected if not Path(path).is_file()]


def test_the_worker_compiles_every_module_of_the_entry_for_its_interpreter(
    quiet_settings: Settings, python_finder: PythonFinder
) -> None:
    manager, entry = build_entry(quiet_settings, python_finder)
    venv = entry / ".venv"
    assert len(worker.sources(str(venv))) >= len(MODULES)
    assert missing_pycs(venv) != [], "uv compiled the entry already; nothing to test"
    size_before = int((entry / ".size").read_text())

    job = job_for(manager, entry)
    completed = subprocess.run(job.argv(), capture_output=True, text=True, check=True)

    assert completed.stdout.strip() == worker.COMPILED
    assert missing_pycs(venv) == []
    assert job.done
    tag, expected = interpreter_facts(venv / "bin" / "python")
    assert all(f".{tag}." in Path(p).name for p in expected)
    for pyc in expected:
        assert Path(pyc).stat().st_mode & 0o222 == 0, f"{pyc} is writable in a sealed entry"
    assert int((entry / ".size").read_text()) > size_before
    # The imports use the compiled files, so nothing is compiled (or written) at import time.
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    probe = "import sys, alpha, beta, gamma, delta; print(alpha.__cached__)"
    cached = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    ).stdout.strip()
    assert Path(cached).is_file()


def test_the_worker_compiles_for_an_older_interpreter(
    quiet_settings: Settings, python_finder: PythonFinder
) -> None:
    older = [i for i in python_finder.installed() if i.version.startswith("3.8.")]
    if not older:
        pytest.skip("no Python 3.8 installed: the oldest interpreter the worker supports")
    manager, entry = build_entry(quiet_settings, python_finder, python="3.8")
    job = job_for(manager, entry)

    completed = subprocess.run(job.argv(), capture_output=True, text=True, check=True)

    assert completed.stdout.strip() == worker.COMPILED, completed.stderr
    tag, _ = interpreter_facts(job.python)
    assert tag == "cpython-38"
    assert missing_pycs(entry / ".venv") == []


def test_an_entry_is_compiled_at_most_once_across_processes(
    quiet_settings: Settings, python_finder: PythonFinder
) -> None:
    manager, entry = build_entry(quiet_settings, python_finder)
    job = job_for(manager, entry)
    processes = [
        subprocess.Popen(job.argv(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outcomes = [process.communicate()[0].strip() for process in processes]

    assert outcomes.count(worker.COMPILED) == 1, outcomes
    assert set(outcomes) <= {worker.COMPILED, worker.BUSY, worker.ALREADY_COMPILED}
    again = subprocess.run(job.argv(), capture_output=True, text=True, check=True)
    assert again.stdout.strip() == worker.ALREADY_COMPILED
    assert missing_pycs(entry / ".venv") == []


def test_a_compiler_holding_the_lock_makes_another_give_up(
    quiet_settings: Settings, python_finder: PythonFinder
) -> None:
    manager, entry = build_entry(quiet_settings, python_finder)
    job = job_for(manager, entry)
    with _locking.hold(job.lock, timeout=5, what="compile"):
        busy = subprocess.run(job.argv(), capture_output=True, text=True, check=True)
    assert busy.stdout.strip() == worker.BUSY
    assert not job.done
    assert missing_pycs(entry / ".venv") != []


def test_the_worker_compiles_nothing_while_every_install_slot_is_taken(
    quiet_settings: Settings, python_finder: PythonFinder
) -> None:
    manager, entry = build_entry(quiet_settings, python_finder)
    job = job_for(manager, entry)  # one slot: max_concurrent_installs=1
    slot = Layout(manager.settings.root).install_slot(0)
    with _locking.hold(slot, timeout=5, what="slot"):
        process = subprocess.Popen(job.argv(), stdout=subprocess.PIPE, text=True)
        # The worker holds its compile lock from the start; once it does, it is
        # past its checks and can only wait for the slot we hold.
        while process.pid not in flock_holders(job.lock) and process.poll() is None:
            threading.Event().wait(0.01)
        assert process.poll() is None, "the worker finished while all slots were taken"
        assert missing_pycs(entry / ".venv") != []
        assert not job.done
    stdout, _ = process.communicate()
    assert stdout.strip() == worker.COMPILED
    assert missing_pycs(entry / ".venv") == []


def test_a_process_importing_from_the_entry_while_it_is_compiled_works(
    quiet_settings: Settings, python_finder: PythonFinder
) -> None:
    manager, entry = build_entry(quiet_settings, python_finder)
    python = entry / ".venv" / "bin" / "python"
    # One file per batch, so imports happen between (and during) batches.
    job = job_for(manager, entry, batch_files=1)
    probe = "import alpha, beta, gamma, delta; print(alpha.__version__, delta.__version__)"
    writers = {**os.environ}
    writers.pop("PYTHONDONTWRITEBYTECODE", None)  # this importer writes .pyc files as well
    readers = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    concurrent: list[subprocess.Popen[str]] = []
    seen: list[str] = []

    def after_batch(batches: int) -> None:
        # Half compiled: some modules have a .pyc, some do not.
        result = subprocess.run(
            [str(python), "-c", probe], capture_output=True, text=True, env=readers, check=False
        )
        seen.append(f"{result.returncode} {result.stdout.strip()} {result.stderr.strip()}")
        if batches == 1:
            concurrent.append(
                subprocess.Popen(
                    [str(python), "-c", probe],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=writers,
                )
            )

    outcome = worker.compile_venv(job_dict(job), after_batch=after_batch)

    assert outcome == worker.COMPILED
    assert len(seen) >= len(MODULES)
    assert all(line == "0 1.0 1.0 " for line in seen), seen
    out, err = concurrent[0].communicate()
    assert (concurrent[0].returncode, out.strip()) == (0, "1.0 1.0"), err
    assert missing_pycs(entry / ".venv") == []


def test_a_compile_stops_when_its_entry_goes_away(
    quiet_settings: Settings, python_finder: PythonFinder
) -> None:
    manager, entry = build_entry(quiet_settings, python_finder)
    job = job_for(manager, entry, batch_files=1)
    marker_before = job.done

    def after_batch(_: int) -> None:
        (entry / ".complete").unlink(missing_ok=True)  # what prune and remove do first

    assert worker.compile_venv(job_dict(job), after_batch=after_batch) == worker.GONE
    assert not marker_before
    assert not job.done


def test_cleanup_leaves_an_entry_being_compiled_for_the_next_cleanup(
    quiet_settings: Settings, python_finder: PythonFinder
) -> None:
    manager, entry = build_entry(quiet_settings, python_finder)
    manager.delete(EnvKey("wf", "compiled"))
    job = job_for(manager, entry)
    with held_by_another_thread(job.lock):
        assert manager.cleanup(idle_seconds=3600).pruned_store_entries == 0
        assert entry.is_dir()
    assert manager.cleanup(idle_seconds=3600).pruned_store_entries == 1
    assert not entry.exists()


def test_the_background_compiler_runs_each_job_detached_and_once_at_a_time(
    quiet_settings: Settings, python_finder: PythonFinder
) -> None:
    manager, entry = build_entry(quiet_settings, python_finder)
    job = job_for(manager, entry)
    compiler = BackgroundCompiler()
    compiler.submit(job)
    compiler.submit(job)  # while the first runs: ignored; after it: a no-op run
    compiler.wait()
    assert compiler.outcomes[job.venv] in {worker.COMPILED, worker.ALREADY_COMPILED}
    assert job.done
    assert missing_pycs(entry / ".venv") == []
