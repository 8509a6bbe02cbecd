"""Crash consistency: kill -9 an operation (or its uv child) at a random moment, then recover.

Each trial runs one create, add or delete in a worker process
(``tests/support/crash_worker.py``) in slow motion, so its file-system steps are spread
over a few hundred milliseconds, and kills it, or the uv process it runs, at a
moment drawn by a seeded RNG over the operation's measured duration. Then a
new manager on the same root runs ``recover()`` and everything is checked:
every env is READY, importable and verifies, or is absent; no temp files,
half-built generations or trash remain; no audit record is left RUNNING.

``UV_ENVS_CRASH_TRIALS`` (default 36) and ``UV_ENVS_CRASH_SEED`` scale and vary it.
"""

from __future__ import annotations

import collections
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import attrs
import pytest
from packaging.requirements import Requirement

from uv_envs import EnvKey, EnvManager, EnvStatus, IndexSettings, Settings
from uv_envs._uv.executor import find_uv_binary
from uv_envs._uv.python import PythonFinder

from .test_stress import check_root, describe, stray_files

WORKER = Path(__file__).parents[1] / "support" / "crash_worker.py"
TRIALS = int(os.environ.get("UV_ENVS_CRASH_TRIALS", "36"))
SEED = int(os.environ.get("UV_ENVS_CRASH_SEED", "4"))
SLOWMO = 0.001  # seconds per call made by uv_envs code in the worker
UV_DELAY = 0.1  # the uv wrapper sleeps this long before exec'ing uv
KEY = EnvKey("wf", "crash", "v1")

# (target, operation) in the proportions of the default 36 trials.
PLAN = (
    [("process", "create")] * 9
    + [("process", "add")] * 9
    + [("process", "delete")] * 6
    + [("uv", "create")] * 6
    + [("uv", "add")] * 6
)
PACKAGES = {"create": ("alpha", "gamma"), "add": ("beta",), "delete": ()}
# What the env declares before the operation, and after it if it completed.
BEFORE = {"create": None, "add": {"alpha"}, "delete": {"alpha", "gamma"}}
AFTER = {"create": {"alpha", "gamma"}, "add": {"alpha", "beta"}, "delete": None}

FIGURES: collections.Counter[str] = collections.Counter()


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (from /proc)."""
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def slow_uv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A uv wrapper that sleeps first, so uv's process lives long enough to be hit."""
    path = tmp_path_factory.mktemp("slow-uv") / "uv"
    path.write_text(f'#!/bin/sh\nsleep {UV_DELAY}\nexec {find_uv_binary()} "$@"\n')
    path.chmod(0o755)
    return path


def start(
    settings: Settings,
    uv: Path | str,
    operation: str,
    *,
    pause_at: str = "",
    slowmo: float = SLOWMO,
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(WORKER),
            str(settings.root),
            str(settings.cache_dir),
            settings.index.find_links[0],
            str(uv),
            str(slowmo),
            operation,
            *attrs.astuple(KEY),
            *PACKAGES[operation],
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CRASH_PAUSE_AT": pause_at},
    )


def wait_for_start(process: subprocess.Popen[str]) -> float:
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() == "START", f"worker did not start: {line!r} {process.communicate()}"
    return time.monotonic()


def prepare(settings: Settings, python_finder: PythonFinder, operation: str) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    before = BEFORE[operation]
    if before is not None:
        manager.create(KEY, packages=sorted(before))
    manager.close()


@pytest.fixture(scope="module")
def durations(
    tmp_path_factory: pytest.TempPathFactory,
    wheelhouse: Path,
    uv_cache: Path,
    python_finder: PythonFinder,
    slow_uv: Path,
) -> dict[str, float]:
    """How long each operation runs in slow motion here: the window kills are drawn from."""
    measured: dict[str, float] = {}
    for operation in ("create", "add", "delete"):
        settings = trial_settings(
            tmp_path_factory.mktemp(f"calibrate-{operation}"), wheelhouse, uv_cache
        )
        prepare(settings, python_finder, operation)
        process = start(settings, slow_uv, operation)
        started = wait_for_start(process)
        stdout, stderr = process.communicate(timeout=300)
        measured[operation] = time.monotonic() - started
        assert process.returncode == 0, stderr
        assert stdout.startswith("DONE"), stdout
    return measured


def trial_settings(directory: Path, wheelhouse: Path, uv_cache: Path) -> Settings:
    # A fresh root per trial: the store is empty, so uv sync really runs.
    return Settings(
        root=directory / "root",
        cache_dir=uv_cache,
        index=IndexSettings(find_links=(str(wheelhouse),), no_index=True),
        lock_timeout=60,
        uv_timeout=300,
    )


def kill_process(
    process: subprocess.Popen[str], started: float, moment: float
) -> tuple[str, list[int]]:
    """Kill the worker at ``moment``; return what was hit and the uv processes it left running."""
    time.sleep(max(0.0, started + moment - time.monotonic()))
    orphans = children(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    stdout, _ = process.communicate(timeout=60)
    if "DONE" in stdout:
        return "finished before the kill", orphans
    return ("killed during uv" if orphans else "killed"), orphans


def wait_for_exit(pids: list[int]) -> None:
    # uv runs in its own process group, so it outlives a killed parent.
    deadline = time.monotonic() + 120
    for pid in pids:
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)


def kill_uv(process: subprocess.Popen[str], started: float, moment: float) -> str:
    time.sleep(max(0.0, started + moment - time.monotonic()))
    hit = "missed"
    while process.poll() is None:
        targets = children(process.pid)
        if targets:
            for pid in targets:
                with_suppressed_kill(pid)
            hit = "uv killed"
            break
        time.sleep(0.002)
    stdout, _ = process.communicate(timeout=120)
    if hit == "uv killed":
        assert "ERROR" in stdout or "DONE" in stdout, stdout
    return hit


def with_suppressed_kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@attrs.frozen
class Rig:
    wheelhouse: Path
    uv_cache: Path
    python_finder: PythonFinder
    slow_uv: Path
    durations: dict[str, float]


@pytest.fixture(scope="module")
def rig(
    wheelhouse: Path,
    uv_cache: Path,
    python_finder: PythonFinder,
    slow_uv: Path,
    durations: dict[str, float],
) -> Rig:
    return Rig(wheelhouse, uv_cache, python_finder, slow_uv, durations)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_kill_at_a_random_moment_leaves_a_consistent_root(
    trial: int, tmp_path: Path, rig: Rig
) -> None:
    target, operation = PLAN[trial % len(PLAN)]
    rng = random.Random(f"{SEED}-{trial}")
    moment = rng.uniform(0, rig.durations[operation])
    settings = trial_settings(tmp_path, rig.wheelhouse, rig.uv_cache)
    python_finder = rig.python_finder
    prepare(settings, python_finder, operation)

    process = start(settings, rig.slow_uv, operation)
    started = wait_for_start(process)
    orphans: list[int] = []
    if target == "process":
        outcome, orphans = kill_process(process, started, moment)
    else:
        outcome = kill_uv(process, started, moment)
    FIGURES[f"{target} {operation}: {outcome}"] += 1

    # Recover at once, while a uv the dead worker started may still run (as after a real crash).
    manager = EnvManager(settings, python_finder=python_finder)
    manager.recover()
    try:
        counts = check_root(manager, [KEY])
    except AssertionError as exc:
        raise AssertionError(f"{outcome} at {moment:.3f} s, orphans {orphans}: {exc}") from None
    FIGURES["half-built store venvs left by recover()"] += len(incomplete_store_entries(manager))
    first = describe(manager, KEY)
    wait_for_exit(orphans)
    try:
        assert check_root(manager, [KEY]) == counts, "a uv left running changed the root"
    except AssertionError as exc:
        msg = f"{outcome} at {moment:.3f} s, orphans {orphans}: {exc}\nbefore they exited:\n{first}"
        raise AssertionError(msg) from None
    declared = None
    if counts.get("READY"):
        declared = {Requirement(d).name for d in manager.dependencies(KEY).declared}
    assert declared in (BEFORE[operation], AFTER[operation]), (
        f"{operation} killed at {moment:.3f}s left {declared}: neither before nor after"
    )
    assert manager.operations(status="RUNNING").total == 0
    assert manager.recover() == [], "a second recover found more to repair"
    # The key works again at once.
    manager.ensure(KEY, packages=["alpha"])
    assert manager.status(KEY).status is EnvStatus.READY
    manager.close()


def incomplete_store_entries(manager: EnvManager) -> list[Path]:
    store = manager._core.services.layout.store_dir
    return [e for e in store.glob("*") if not (e / ".complete").exists()] if store.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("operation", "step"),
    [
        pytest.param("add", "write_atomic>replace:1", id="add-metadata-write"),
        pytest.param("create", "write_atomic>replace:2", id="create-lockstore-write"),
        pytest.param("add", "point_current>replace:1", id="add-current-switch"),
        pytest.param("create", "link>time:1", id="create-store-venv-built"),
    ],
)
def test_recover_leaves_no_debris_of_an_interrupted_step(
    operation: str, step: str, tmp_path: Path, rig: Rig
) -> None:
    """Killed in the middle of one atomic step, the operation must leave nothing after recover()."""
    settings = trial_settings(tmp_path, rig.wheelhouse, rig.uv_cache)
    prepare(settings, rig.python_finder, operation)
    process = start(settings, find_uv_binary(), operation, pause_at=step, slowmo=0)
    wait_for_start(process)
    assert process.stdout is not None
    paused = process.stdout.readline().strip()
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert paused == "PAUSED", f"the worker never reached {step}: {paused!r}"
    manager = EnvManager(settings, python_finder=rig.python_finder)

    manager.recover()

    root = settings.root
    assert [str(p.relative_to(root)) for p in stray_files(root)] == []
    assert incomplete_store_entries(manager) == [], "recover() left a half-built venv in store/"
    check_root(manager, [KEY])
    manager.close()


def test_crash_figures(request: pytest.FixtureRequest) -> None:
    """Print what the trials hit (pytest -s; the figures in docs/reliability.md)."""
    del request
    trials = sum(n for label, n in FIGURES.items() if ":" in label)
    print(f"\ncrash trials: {trials}: {dict(sorted(FIGURES.items()))}")


@pytest.mark.slow
def test_a_uv_left_running_by_a_killed_manager_never_touches_the_live_generation(
    tmp_path: Path, rig: Rig
) -> None:
    """Kill the manager while its ``uv add`` runs, and recover at once while that uv runs on.

    uv runs in its own process group, so it outlives a manager killed with -9,
    and recovery deletes the half-built generation it works in. Seen: that uv
    then adds the package to the *live* generation's pyproject.toml and uv.lock
    (most likely through the env's top-level links into ``current``), leaving a
    READY env whose lock names a package its venv lacks. The race is narrow:
    each attempt kills at a slightly later moment of ``uv add`` (the wrapper
    sleeps UV_DELAY, then runs uv), and the test stops at the first hit.
    """
    attempts = int(os.environ.get("UV_ENVS_ORPHAN_ATTEMPTS", "60"))
    for attempt in range(attempts):
        settings = trial_settings(tmp_path / str(attempt), rig.wheelhouse, rig.uv_cache)
        prepare(settings, rig.python_finder, "add")
        live = settings.root / "envs" / "wf" / "crash" / "v1" / "gens" / "1"
        before = {name: (live / name).read_bytes() for name in ("pyproject.toml", "uv.lock")}
        process = start(settings, rig.slow_uv, "add", slowmo=0)
        wait_for_start(process)
        while not children(process.pid) and process.poll() is None:
            time.sleep(0.001)
        time.sleep(UV_DELAY + 0.003 * (attempt % 15))  # into uv add itself
        orphans = children(process.pid)
        os.kill(process.pid, signal.SIGKILL)
        process.communicate(timeout=60)
        manager = EnvManager(settings, python_finder=rig.python_finder)
        manager.recover()
        wait_for_exit(orphans)
        after = {name: (live / name).read_bytes() for name in ("pyproject.toml", "uv.lock")}
        report = manager.verify(KEY)
        manager.close()
        changed = [name for name in before if before[name] != after[name]]
        assert changed == [], (
            f"attempt {attempt}: a uv the killed manager left running rewrote the live "
            f"generation's {changed}: {report.problems}"
        )
        assert report.ok, f"attempt {attempt}: {report.problems}"


@pytest.mark.parametrize(
    "step",
    [
        pytest.param("_seal:1", id="add-store-entry-sealing"),
        pytest.param("point_current>replace:1", id="add-current-switch"),
    ],
)
def test_the_env_digest_survives_a_crash_and_recover(step: str, tmp_path: Path, rig: Rig) -> None:
    """Killed mid-add, the recovered env's digest is the one its files give (issue 30)."""
    settings = trial_settings(tmp_path, rig.wheelhouse, rig.uv_cache)
    prepare(settings, rig.python_finder, "add")
    before = EnvManager(settings, python_finder=rig.python_finder).get(KEY)
    assert before.digest.startswith("sha256:")
    process = start(settings, find_uv_binary(), "add", pause_at=step, slowmo=0)
    wait_for_start(process)
    assert process.stdout is not None
    paused = process.stdout.readline().strip()
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)
    assert paused == "PAUSED", f"the worker never reached {step}: {paused!r}"
    manager = EnvManager(settings, python_finder=rig.python_finder)

    manager.recover()

    after = manager.get(KEY)
    verified = manager.verify(KEY)
    assert verified.ok, verified.problems
    assert verified.digest == after.digest
    if after.generation == before.generation:
        assert after.digest == before.digest
    else:  # committed before the kill: the new generation's own digest
        assert after.digest != before.digest
    manager.close()
