"""Side-by-side benchmark of uv-envs against raw uv and venv + pip; prints a markdown table.

    python benchmarks/run.py [--quick] [--reps N] [--cold-reps N] [--out FILE]

Everything it writes (roots, project dirs, uv and pip caches) lives under one
temporary directory that is removed at the end; the user's caches are never
touched. Figures are medians over ``--reps`` repetitions (5 by default; cold
uv/pip caches use ``--cold-reps``, 3 by default, since each downloads the set
again). ``--quick`` runs 2 repetitions of the small set only, as a smoke test.

What is measured (docs/performance.md explains each figure):

1. raw uv by hand: ``uv venv`` + ``uv lock`` + ``uv sync --frozen`` in a
   project dir, with the flags uv-envs passes (the floor);
2. ``python -m venv`` + ``pip install`` (pip's cache in the temp dir);
3. uv-envs create of a new spec, in-process and through the CLI;
4. uv-envs create of a spec whose lock is stored, with its venv (a) not built
   yet and (b) already built; disk used per extra env;
5. 16 concurrent ensures of one key (threads), 8 keys with one spec (processes);
6. status of one env, list of 10,000 synthetic envs;
7. cleanup scan over those 10,000 envs;
8. bytecode, medium set: none, compiled in the background after the create,
   or at install time; first import with ``PYTHONDONTWRITEBYTECODE=1``, and a
   create while a background compile runs.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import platform
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from package_sets import MEDIUM, SETS  # noqa: E402 - beside this script

import uv_envs  # noqa: E402
from uv_envs import (  # noqa: E402
    Environment,
    EnvKey,
    EnvManager,
    EnvSpec,
    EnvStatus,
    Settings,
    SubprocessUvExecutor,
)
from uv_envs._root.bytecode import BackgroundCompiler  # noqa: E402
from uv_envs._root.layout import Layout  # noqa: E402
from uv_envs._root.metadata import JsonMetadataRepository  # noqa: E402
from uv_envs._root.project import render_pyproject  # noqa: E402
from uv_envs._uv.executor import child_environment, find_uv_binary  # noqa: E402
from uv_envs.testing import CountingExecutor  # noqa: E402

IMPORTS = "import pandas, numpy, pydantic, fastapi, sqlalchemy, jinja2, click, rich, httpx"
SYNTHETIC_ENVS = 10_000

#: Row 3r runs only where this Python has Ray (the link it measures needs one).
RAY_IMPORTABLE = importlib.util.find_spec("ray") is not None

# Processes started by the benchmark import uv_envs from this checkout.
WORKER = """
import json, sys
from uv_envs import EnvKey, EnvManager, Settings
a = json.loads(sys.argv[1])
m = EnvManager(Settings(root=a["root"], cache_dir=a["cache"], uv_binary=a["uv"],
                        background_bytecode=False, ray="off"))
m.ensure(EnvKey("bench", a["node"]), packages=a["packages"])
"""


# --- small helpers ----------------------------------------------------------------------


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a default user: no uv/pip steering, and bytecode writes allowed."""
    env = child_environment({})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return {**env, **extra}


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def run(argv: Sequence[Any], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    completed = subprocess.run(
        list(map(str, argv)), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, argv))} failed ({completed.returncode}):\n{completed.stderr}"
        )


def timed_run(
    argv: Sequence[Any], *, cwd: Path | None = None, env: dict[str, str] | None = None
) -> float:
    started = time.perf_counter()
    run(argv, cwd=cwd, env=env)
    return time.perf_counter() - started


def tree_bytes(path: Path) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) under ``path``, not following symlinks.

    Each inode counts once; a symlink counts as itself.
    """
    seen: set[tuple[int, int]] = set()
    apparent = allocated = 0
    for directory, dirs, files in os.walk(path, followlinks=False):
        for name in (*dirs, *files, "."):
            if name == "." and directory != str(path):
                continue  # a directory is counted once, from its parent
            info = Path(directory, name).lstat()
            if (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            apparent += info.st_size
            allocated += info.st_blocks * 512
    return apparent, allocated


def remove_tree(path: Path) -> None:
    def make_writable(function: Callable[..., Any], target: str, _: object) -> None:
        parent = Path(target).parent
        parent.chmod(parent.stat().st_mode | stat.S_IWUSR | stat.S_IXUSR)
        Path(target).chmod(Path(target).stat().st_mode | stat.S_IWUSR)
        function(target)

    shutil.rmtree(path, onerror=make_writable)


def mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kib = int(line.split()[1])
                return f"{kib / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def fmt_s(value: float) -> str:
    if value != value:  # noqa: PLR0124 - NaN
        return "-"
    if value < 0.1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f} s"


def fmt_ratio(value: float) -> str:
    if value != value:  # noqa: PLR0124 - NaN
        return "-"
    return f"{value:.2f}x" if value < 100 else f"{value:.0f}x"


# --- the benchmark ----------------------------------------------------------------------


class Bench:
    """State shared by the measurements: the temp dir, uv, the interpreter, the results."""

    def __init__(self, tmp: Path, reps: int, cold_reps: int) -> None:
        self.tmp = tmp
        self.reps = reps
        self.cold_reps = cold_reps
        self.uv = find_uv_binary()
        self.counter = 0
        self.warm_uv_cache = tmp / "uv-cache-warm"
        self.warm_pip_cache = tmp / "pip-cache-warm"
        probe = self.manager(self.fresh("probe-root"), self.warm_uv_cache)
        self.python_request = probe.settings.default_python
        started = time.perf_counter()
        self.interpreter = probe._core.services.python_finder.find(self.python_request)
        self.discovery_s = time.perf_counter() - started
        self.python = str(self.interpreter.path)
        # (what, set, cache) -> samples in seconds
        self.samples: dict[tuple[str, str, str], list[float]] = {}
        self.notes: dict[tuple[str, str, str], str] = {}
        self.extra: dict[str, Any] = {}
        self.seen: dict[tuple[str, str, str], list[tuple[int, ...]]] = {}
        self.subprocess_env = base_env(PYTHONPATH=str(ROOT))

    def fresh(self, name: str) -> Path:
        self.counter += 1
        path = self.tmp / f"{name}-{self.counter}"
        path.mkdir(parents=True)
        return path

    def cache(self, mode: str) -> Path:
        return self.fresh("uv-cache-cold") if mode == "cold" else self.warm_uv_cache

    def manager(self, root: Path, cache: Path, **settings: Any) -> EnvManager:  # noqa: ANN401 - Settings fields
        """A manager on ``root``; background compiles and the Ray link only where asked for.

        Compiles are off by default so that one left running by one part never
        competes with the measurements of another; part 8 compares on and off.
        The Ray link is off so that uv-envs makes what raw uv and pip make (a
        venv that is no Ray worker); row 3r measures what the link costs.
        """
        executor = CountingExecutor(SubprocessUvExecutor(self.uv))
        options = {"background_bytecode": False, "ray": "off", **settings}
        return EnvManager(
            Settings(root=root, cache_dir=cache, uv_binary=self.uv, **options), executor=executor
        )

    def warm_manager(self, root: Path, cache: Path, **settings: Any) -> EnvManager:  # noqa: ANN401 - ditto
        """A manager as a long-running process has it: interpreters found, audit DB open."""
        manager = self.manager(root, cache, **settings)
        manager._core.services.python_finder.find(manager.settings.default_python)
        manager.operations(limit=1)
        return manager

    def record(self, what: str, set_name: str, mode: str, seconds: float) -> None:
        self.samples.setdefault((what, set_name, mode), []).append(seconds)

    def note(self, what: str, set_name: str, mode: str, text: str) -> None:
        self.notes[(what, set_name, mode)] = text

    def reps_for(self, mode: str) -> int:
        return self.cold_reps if mode == "cold" else self.reps


RAW = "1. raw uv: venv + lock + sync --frozen (floor)"
RAW_NO_LOCK = "1'. raw uv: venv + sync --frozen (lock given)"
RAW_LOCK = "1''. raw uv: lock alone"
RAW_SYNC = "1'''. raw uv: sync --frozen alone (lock given, venv made)"
PIP = "2. python -m venv + pip install"
NEW_API = "3. uv-envs create, new spec, in-process"
NEW_CLI = "3. uv-envs create, new spec, CLI"
NEW_RAY = "3r. uv-envs create, new spec, in-process, linked to this Ray (import check)"
NEW_SHARED = "3'. uv-envs create, new spec, venv of same resolution built"
STORED = "4a. uv-envs create, stored lock, venv not built"
BUILT = "4b. uv-envs create, stored lock, venv built"


def raw_uv_once(bench: Bench, set_name: str, mode: str) -> None:
    packages = SETS[set_name]
    env = base_env(UV_PYTHON_DOWNLOADS="never")
    cache = bench.cache(mode)
    project = bench.fresh("raw")
    (project / "pyproject.toml").write_text(
        render_pyproject(EnvKey("bench", "raw"), packages, bench.python_request)
    )
    common = ["--no-config", "--no-progress", "--color", "never", "--cache-dir", str(cache)]
    common += ["--python", bench.python]
    t_venv = timed_run([bench.uv, "venv", *common, project / ".venv"], env=env)
    t_lock = timed_run([bench.uv, "lock", *common], cwd=project, env=env)
    t_sync = timed_run([bench.uv, "sync", "--frozen", *common], cwd=project, env=env)
    bench.record(RAW, set_name, mode, t_venv + t_lock + t_sync)
    bench.record(RAW_NO_LOCK, set_name, mode, t_venv + t_sync)
    bench.record(RAW_LOCK, set_name, mode, t_lock)
    bench.record(RAW_SYNC, set_name, mode, t_sync)


def bench_create_rounds(bench: Bench, set_name: str, mode: str, base_root: Path) -> None:
    """1, 3 and 4a, interleaved: each round runs each once, so a burst of noise hits all."""
    for rep in range(bench.reps_for(mode)):
        raw_uv_once(bench, set_name, mode)
        new_spec_once(bench, set_name, mode, rep)
        new_spec_cli_once(bench, set_name, mode, rep)
        if RAY_IMPORTABLE:
            new_spec_once(bench, set_name, mode, rep, ray="auto")
        stored_once(bench, set_name, mode, base_root)
    for what in (NEW_API, STORED):
        seen = bench.seen.pop((what, set_name, mode))
        bench.note(what, set_name, mode, _counts_note(seen))
        bench.extra[f"uv_runs {what} {set_name} {mode}"] = sorted({c[2] for c in seen})


def bench_pip(bench: Bench, set_name: str, mode: str) -> None:
    packages = SETS[set_name]
    for _ in range(bench.reps_for(mode)):
        pip_cache = bench.fresh("pip-cache-cold") if mode == "cold" else bench.warm_pip_cache
        env = base_env(PIP_CACHE_DIR=str(pip_cache), PIP_DISABLE_PIP_VERSION_CHECK="1")
        venv = bench.fresh("pip") / "venv"

        def create(venv: Path = venv, env: dict[str, str] = env) -> None:
            run([bench.python, "-m", "venv", venv], env=env)
            run([venv / "bin" / "python", "-m", "pip", "install", "-q", *packages], env=env)

        seconds, _ = timed(create)
        bench.record(PIP, set_name, mode, seconds)


def counts(manager: EnvManager) -> tuple[int, int, int]:
    """(resolutions, installs, uv subprocesses of any kind) the manager ran so far."""
    executor = manager._core.services.uv.executor
    assert isinstance(executor, CountingExecutor)
    return executor.count("lock", check=False), executor.count("sync"), len(executor.calls)


def new_spec_once(bench: Bench, set_name: str, mode: str, rep: int, *, ray: str = "off") -> None:
    """3 (3r with ``ray="auto"``), in-process: a fresh root and a spec no root has seen."""
    packages = SETS[set_name]
    manager = bench.warm_manager(bench.fresh("root"), bench.cache(mode), ray=ray)
    spec = [*packages[:-1], f"{packages[-1]}!=0.0.{rep}"]
    seconds, _ = timed(lambda: manager.create(EnvKey("bench", "new"), packages=spec))
    what = NEW_API if ray == "off" else NEW_RAY
    bench.record(what, set_name, mode, seconds)
    if ray == "off":
        bench.seen.setdefault((NEW_API, set_name, mode), []).append(counts(manager))


def new_spec_cli_once(bench: Bench, set_name: str, mode: str, rep: int) -> None:
    """3, through the CLI: start-up, imports and interpreter discovery included."""
    packages = SETS[set_name]
    root = bench.fresh("root")
    cache = bench.cache(mode)
    argv = [sys.executable, "-m", "uv_envs", "--root", root, "create", "bench", "cli"]
    for package in [*packages[:-1], f"{packages[-1]}!=0.0.{rep}"]:
        argv += ["-p", package]
    env = {
        **bench.subprocess_env,
        "UV_ENVS_CACHE_DIR": str(cache),
        "UV_ENVS_UV_BIN": bench.uv,
        "UV_ENVS_BACKGROUND_BYTECODE": "0",
        "UV_ENVS_RAY": "off",
    }
    bench.record(NEW_CLI, set_name, mode, timed_run(argv, env=env))


def _counts_note(seen: Iterable[tuple[int, ...]]) -> str:
    distinct = sorted(set(seen))
    return ", ".join(
        f"{c[0]} resolution(s), {c[1]} install(s)" + (f", {c[2]} uv run(s)" if c[2:] else "")
        for c in distinct
    )


def stored_once(bench: Bench, set_name: str, mode: str, base_root: Path) -> None:
    """4a: a fresh root that has only the first root's lockstore: resolution is skipped."""
    packages = SETS[set_name]
    root = bench.fresh("root")
    shutil.copytree(base_root / "lockstore", root / "lockstore")
    manager = bench.warm_manager(root, bench.cache(mode))
    seconds, _ = timed(lambda: manager.create(EnvKey("bench", "second"), packages=packages))
    bench.record(STORED, set_name, mode, seconds)
    bench.seen.setdefault((STORED, set_name, mode), []).append(counts(manager))


def bench_built(bench: Bench, set_name: str, base: EnvManager) -> None:
    """3' and 4b on the base root, whose venv for this resolution is built."""
    packages = SETS[set_name]
    executor = base._core.services.uv.executor
    assert isinstance(executor, CountingExecutor)
    sizes = []
    seen = []
    for rep in range(bench.reps * 4):  # fast: more samples for a steadier median
        before = counts(base)
        key = EnvKey("bench", f"built-{rep}")
        seconds, environment = timed(lambda: base.create(key, packages=packages))  # noqa: B023
        after = counts(base)
        seen.append(tuple(a - b for a, b in zip(after, before, strict=True)))
        bench.record(BUILT, set_name, "warm", seconds)
        sizes.append(tree_bytes(environment.env_path))
    bench.note(BUILT, set_name, "warm", _counts_note(seen))
    bench.extra[f"uv_runs {BUILT} {set_name} warm"] = sorted({c[2] for c in seen})
    bench.extra[f"disk_per_env_{set_name}"] = (
        median([a for a, _ in sizes]),
        median([b for _, b in sizes]),
    )
    seen = []
    for rep in range(bench.reps):
        before = counts(base)
        spec = [*packages[:-1], f"{packages[-1]}!=0.1.{rep}"]
        key = EnvKey("bench", f"shared-{rep}")
        seconds, _ = timed(lambda: base.create(key, packages=spec))  # noqa: B023
        after = counts(base)
        seen.append(tuple(a - b for a, b in zip(after, before, strict=True)))
        bench.record(NEW_SHARED, set_name, "warm", seconds)
    bench.note(NEW_SHARED, set_name, "warm", _counts_note(seen))


def bench_threads(bench: Bench, set_name: str) -> None:
    """16 threads ensure one key on a fresh root, against one ensure on another fresh root."""
    packages = SETS[set_name]
    ones, manys, seen = [], [], []
    for _ in range(bench.reps):
        manager = bench.warm_manager(bench.fresh("root"), bench.warm_uv_cache)
        seconds, _ = timed(lambda: manager.ensure(EnvKey("bench", "one"), packages=packages))  # noqa: B023
        ones.append(seconds)
        manager = bench.warm_manager(bench.fresh("root"), bench.warm_uv_cache)
        barrier = threading.Barrier(17)
        paths: list[str] = []

        def ensure(
            manager: EnvManager = manager,
            barrier: threading.Barrier = barrier,
            paths: list[str] = paths,
        ) -> None:
            barrier.wait()
            environment = manager.ensure(EnvKey("bench", "same"), packages=packages)
            paths.append(str(environment.python_path))

        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(ensure) for _ in range(16)]
            barrier.wait()
            started = time.perf_counter()
            for future in futures:
                future.result()
            manys.append(time.perf_counter() - started)
        assert len(set(paths)) == 1, paths
        seen.append(counts(manager))
    bench.extra[f"threads_{set_name}"] = {
        "one": median(ones),
        "many": median(manys),
        "counts": _counts_note(seen),
    }


def bench_processes(bench: Bench, set_name: str) -> None:
    """8 processes each ensure a distinct key with the same spec, on one fresh root."""
    packages = SETS[set_name]

    def launch(root: Path, nodes: Sequence[str]) -> float:
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    json.dumps(
                        {
                            "root": str(root),
                            "cache": str(bench.warm_uv_cache),
                            "uv": bench.uv,
                            "node": node,
                            "packages": list(packages),
                        }
                    ),
                ],
                env=bench.subprocess_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for node in nodes
        ]
        for process in processes:
            _, stderr = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"worker failed: {stderr.decode()}")
        return time.perf_counter() - started

    ones, manys, seen = [], [], []
    for _ in range(bench.reps):
        ones.append(launch(bench.fresh("root"), ["p0"]))
        root = bench.fresh("root")
        manys.append(launch(root, [f"p{i}" for i in range(8)]))
        records = bench.manager(root, bench.warm_uv_cache).operations(limit=100).items
        resolved = sum(1 for r in records if r.metadata.get("resolved") is True)
        installed = sum(1 for r in records if r.metadata.get("installed") is True)
        seen.append((resolved, installed))
    bench.extra[f"processes_{set_name}"] = {
        "one": median(ones),
        "many": median(manys),
        "counts": _counts_note(seen),
    }


def bench_status(bench: Bench, base: EnvManager, key: EnvKey) -> None:
    calls = []
    for _ in range(2000):
        seconds, report = timed(lambda: base.status(key))
        calls.append(seconds)
    assert report.status is EnvStatus.READY
    calls.sort()
    bench.extra["status"] = {"median": median(calls), "p99": calls[int(0.99 * len(calls))]}


def bench_metadata(bench: Bench) -> None:
    """6 and 7: list and cleanup over 10,000 envs written as metadata only."""
    root = bench.fresh("synthetic")
    layout = Layout(root)
    repository = JsonMetadataRepository(layout)
    now = time.time()
    spec = EnvSpec(packages=("requests",), python=bench.python_request)

    def write(index: int) -> None:
        key = EnvKey(f"wf{index // 1000}", f"node{index // 10 % 100}", f"v{index % 10}")
        env_dir = layout.env_dir(key)
        (env_dir / "gens" / "1").mkdir(parents=True)
        os.symlink("gens/1", env_dir / "current")
        repository.save(
            Environment(
                key=key,
                env_path=env_dir,
                status=EnvStatus.READY,
                spec=spec,
                spec_hash="0" * 64,
                python_version=bench.interpreter.version,
                python_executable=bench.python,
                generation=1,
                created_at=now,
                updated_at=now,
            )
        )

    with ThreadPoolExecutor(8) as pool:
        seconds, _ = timed(lambda: list(pool.map(write, range(SYNTHETIC_ENVS))))
    bench.extra["synthetic_write"] = seconds
    manager = bench.warm_manager(root, bench.warm_uv_cache)
    lists = []
    for _ in range(bench.reps):
        seconds, found = timed(manager.list_environments)
        assert len(found) == SYNTHETIC_ENVS, len(found)
        lists.append(seconds)
    bench.extra["list"] = median(lists)
    first, report = timed(lambda: manager.cleanup(idle_seconds=1e9))
    assert not report.deleted, report.deleted
    cleanups = [timed(lambda: manager.cleanup(idle_seconds=1e9))[0] for _ in range(bench.reps)]
    bench.extra["cleanup_first"] = first
    bench.extra["cleanup"] = median(cleanups)


BYTECODE_MODES: dict[str, dict[str, bool]] = {
    "none": {"background_bytecode": False},
    "background": {"background_bytecode": True},
    "install": {"compile_bytecode": True},
}


def bench_bytecode(bench: Bench) -> None:
    """8: no bytecode, background compile, install-time compile; imports without writing .pyc.

    Each repetition creates the medium set on a fresh root in each mode, in
    turn. In background mode the create is timed as it returns, then a second
    create (another fresh root, background off) runs while the compile works,
    and only then does the benchmark wait for the compile. Imports run with
    ``PYTHONDONTWRITEBYTECODE=1`` (as on this machine, in many CI systems and
    containers), so each import is a first import.
    """
    no_write = base_env(PYTHONDONTWRITEBYTECODE="1")
    samples: dict[str, dict[str, list[float]]] = {
        mode: {"create": [], "first_import": [], "second_import": [], "size": []}
        for mode in BYTECODE_MODES
    }
    during: list[float] = []
    compile_wall: list[float] = []
    outcomes: list[str] = []
    for _ in range(bench.reps):
        for mode, options in BYTECODE_MODES.items():
            manager = bench.warm_manager(bench.fresh("root"), bench.warm_uv_cache, **options)
            key = EnvKey("bench", "imp")
            took, environment = timed(functools.partial(manager.create, key, packages=MEDIUM))
            samples[mode]["create"].append(took)
            if mode == "background":
                other = bench.warm_manager(bench.fresh("root"), bench.warm_uv_cache)
                started = time.perf_counter()
                during.append(timed(functools.partial(other.create, key, packages=MEDIUM))[0])
                compiler = manager._core.services.bytecode.compiler
                assert isinstance(compiler, BackgroundCompiler)
                compiler.wait()
                compile_wall.append(time.perf_counter() - started)
                outcomes += compiler.outcomes.values()
            argv = [environment.python_path, "-c", IMPORTS]
            samples[mode]["first_import"].append(timed_run(argv, env=no_write))
            samples[mode]["second_import"].append(timed_run(argv, env=no_write))
            samples[mode]["size"].append(tree_bytes(environment.env_path / ".venv" / "lib")[1])
    bench.extra["bytecode"] = {
        mode: {field: median(values) for field, values in fields.items()}
        for mode, fields in samples.items()
    }
    bench.extra["bytecode_during"] = median(during)
    bench.extra["bytecode_compile_wall"] = median(compile_wall)
    bench.extra["bytecode_outcomes"] = sorted(set(outcomes))


# --- report -----------------------------------------------------------------------------


def machine() -> list[tuple[str, str]]:
    uv = find_uv_binary()
    uv_version = subprocess.run(
        [uv, "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return [
        ("platform", platform.platform()),
        ("processor", platform.machine()),
        ("os.cpu_count()", str(os.cpu_count())),
        ("memory", mem_total()),
        ("uv", uv_version),
        ("Python", sys.version.split()[0] + f" ({platform.python_implementation()})"),
        ("uv-envs", uv_envs.__version__),
        ("date (UTC)", time.strftime("%Y-%m-%d %H:%M", time.gmtime())),
    ]


def report(bench: Bench, set_names: Sequence[str], modes: Sequence[str]) -> str:  # noqa: C901 - one table per benchmark, in order
    lines = ["## Machine", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in machine()]
    lines += [
        "",
        (
            f"Medians of {bench.reps} repetitions (cold cache: {bench.cold_reps}). "
            "Interpreter discovery (once per EnvManager, left out of in-process figures): "
            f"{bench.discovery_s * 1000:.2f} ms."
        ),
        "",
        "## Creating environments",
        "",
        (
            "x floor = this / raw uv (venv + lock + sync); x sync floor = this / raw uv "
            "(venv + sync, lock given); pip / this = how many times faster than venv + pip."
        ),
        "",
        (
            "| measurement | set | uv cache | median | min | x floor | x sync floor "
            "| pip / this | uv runs |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    order = [RAW, RAW_NO_LOCK, RAW_LOCK, RAW_SYNC, PIP, NEW_API, NEW_RAY, NEW_CLI, NEW_SHARED]
    order += [STORED, BUILT]
    for set_name in set_names:
        for mode in modes:
            floor = median(bench.samples.get((RAW, set_name, mode), []))
            sync_floor = median(bench.samples.get((RAW_NO_LOCK, set_name, mode), []))
            pip = median(bench.samples.get((PIP, set_name, mode), []))
            for what in order:
                samples = bench.samples.get((what, set_name, mode))
                if not samples:
                    continue
                value = median(samples)
                lines.append(
                    f"| {what} | {set_name} | {mode} | {fmt_s(value)} | {fmt_s(min(samples))} "
                    f"| {fmt_ratio(value / floor)} | {fmt_ratio(value / sync_floor)} "
                    f"| {fmt_ratio(pip / value)} | {bench.notes.get((what, set_name, mode), '')} |"
                )
    lines += [
        "",
        "## Disk",
        "",
        "| set | bytes under the env dir of an extra env (4b) |",
        "|---|---|",
    ]
    for set_name in set_names:
        apparent, allocated = bench.extra.get(f"disk_per_env_{set_name}", (0, 0))
        lines.append(
            f"| {set_name} | {apparent / 1024:.1f} KiB apparent, {allocated / 1024:.1f} KiB "
            "allocated |"
        )
    lines += [
        "",
        "## Concurrency (warm cache)",
        "",
        "| measurement | set | one | concurrent | ratio | uv runs (all together) |",
        "|---|---|---|---|---|---|",
    ]
    for set_name in set_names:
        for kind, label in (
            ("threads", "16 threads ensure one key"),
            ("processes", "8 processes ensure 8 keys, one spec"),
        ):
            data = bench.extra.get(f"{kind}_{set_name}")
            if data:
                lines.append(
                    f"| {label} | {set_name} | {fmt_s(data['one'])} | {fmt_s(data['many'])} "
                    f"| {fmt_ratio(data['many'] / data['one'])} | {data['counts']} |"
                )
    status = bench.extra.get("status")
    if status:
        lines += [
            "",
            "## Metadata operations",
            "",
            "| measurement | median |",
            "|---|---|",
            (
                f"| status of one env (in-process) | {status['median'] * 1000:.3f} ms "
                f"(p99 {status['p99'] * 1000:.3f} ms) |"
            ),
        ]
    if "list" in bench.extra:
        n = f"{SYNTHETIC_ENVS:,}"
        lines += [
            f"| write {n} metadata.json (set-up) | {fmt_s(bench.extra['synthetic_write'])} |",
            f"| list_environments over {n} envs | {fmt_s(bench.extra['list'])} |",
            f"| cleanup scan over {n} envs, first | {fmt_s(bench.extra['cleanup_first'])} |",
            f"| cleanup scan over {n} envs, again | {fmt_s(bench.extra['cleanup'])} |",
        ]
    bytecode = bench.extra.get("bytecode")
    if bytecode:
        lines += [
            "",
            "## Bytecode (medium set, warm cache, fresh root, PYTHONDONTWRITEBYTECODE=1)",
            "",
            "| | no bytecode | background compile | compile_bytecode=True |",
            "|---|---|---|---|",
        ]
        for field, label in (
            ("create", "create (in-process)"),
            ("first_import", "first import (after the background compile)"),
            ("second_import", "second import"),
        ):
            lines.append(
                f"| {label} | {fmt_s(bytecode['none'][field])} "
                f"| {fmt_s(bytecode['background'][field])} | {fmt_s(bytecode['install'][field])} |"
            )
        lines.append(
            "| site-packages (allocated) | "
            + " | ".join(f"{bytecode[m]['size'] / 2**20:.1f} MiB" for m in BYTECODE_MODES)
            + " |"
        )
        lines += [
            "",
            (
                f"A create on another root while the background compile runs: "
                f"{fmt_s(bench.extra['bytecode_during'])} (no compile running: "
                f"{fmt_s(bytecode['none']['create'])}). The compile finished "
                f"{fmt_s(bench.extra['bytecode_compile_wall'])} after that create started "
                f"(worker outcomes: {', '.join(bench.extra['bytecode_outcomes'])})."
            ),
        ]
    lines += ["", *targets(bench, set_names)]
    return "\n".join(lines) + "\n"


def targets(bench: Bench, set_names: Sequence[str]) -> list[str]:  # noqa: C901 - a row per target
    set_name = "medium" if "medium" in set_names else set_names[0]

    def value(what: str) -> float:
        return median(bench.samples.get((what, set_name, "warm"), []))

    rows = []
    floor, pip = value(RAW), value(PIP)
    rows.append(("new spec in-process <= 1.2x raw uv", value(NEW_API) / floor, 1.2, "x"))
    rows.append(("stored lock, venv not built <= 0.25 s", value(STORED), 0.25, "s"))
    rows.append(
        ("stored lock, venv not built >= 50x faster than pip", pip / value(STORED), 50, ">")
    )
    rows.append(("(lock, Python) built <= 0.05 s", value(BUILT), 0.05, "s"))
    rows.append(("(lock, Python) built <= 10 ms (issue 13)", value(BUILT) * 1000, 10.0, "ms"))
    rows.append(
        (
            "stored lock, venv not built <= 1.2x uv sync --frozen alone",
            value(STORED) / value(RAW_SYNC),
            1.2,
            "x",
        )
    )
    disk = bench.extra.get(f"disk_per_env_{set_name}", (float("nan"),) * 2)[1]
    rows.append(("(lock, Python) built < 1 MB new disk", disk / 1e6, 1.0, "MB"))
    threads = bench.extra.get(f"threads_{set_name}")
    if threads:
        rows.append(("16 same-key ensures <= 1.3x one", threads["many"] / threads["one"], 1.3, "x"))
    status = bench.extra.get("status")
    if status:
        rows.append(("status of one env <= 2 ms", status["median"] * 1000, 2.0, "ms"))
    if "list" in bench.extra:
        rows.append(("list of 10,000 envs <= 1 s", bench.extra["list"], 1.0, "s"))
    bytecode = bench.extra.get("bytecode")
    if bytecode:
        rows.append(
            (
                "first import, background-compiled <= 1.1x install-time compiled",
                bytecode["background"]["first_import"] / bytecode["install"]["first_import"],
                1.1,
                "x",
            )
        )
        rows.append(
            (
                "create, background compile on <= 1.1x off",
                bytecode["background"]["create"] / bytecode["none"]["create"],
                1.1,
                "x",
            )
        )
        rows.append(
            (
                "create during a background compile <= 1.1x none running",
                bench.extra["bytecode_during"] / bytecode["none"]["create"],
                1.1,
                "x",
            )
        )
    lines = [
        f"## Targets ({set_name} set, warm cache)",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    for label, measured, limit, unit in rows:
        met = measured >= limit if unit == ">" else measured <= limit
        shown = f"{measured:.0f}x" if unit == ">" else f"{measured:.3g} {unit}".replace(" x", "x")
        verdict = "met" if met else f"missed by {measured / limit:.2f}x the limit"
        if unit == ">" and not met:
            verdict = f"missed ({measured:.0f}x < {limit}x)"
        if measured != measured:  # noqa: PLR0124 - NaN
            verdict = "not measured"
        lines.append(f"| {label} | {shown} | {verdict} |")
    if threads:
        lines.append(f"| 16 same-key ensures: exactly one install | {threads['counts']} | |")
    for what, wanted in ((BUILT, 0), (STORED, 1)):
        runs = bench.extra.get(f"uv_runs {what} {set_name} warm")
        if runs is not None:
            verdict = "met" if runs == [wanted] else "missed"
            shown = ", ".join(map(str, runs))
            lines.append(f"| {what}: {wanted} uv run(s) | {shown} uv run(s) | {verdict} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915 - options, runs and report, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions, small set only")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5)")
    parser.add_argument(
        "--cold-reps", type=int, default=None, help="repetitions with a cold cache (default 3)"
    )
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    parser.add_argument(
        "--only",
        default="create,concurrency,metadata,bytecode",
        help="comma-separated parts to run (create, concurrency, metadata, bytecode)",
    )
    parser.add_argument(
        "--sets", default=None, help="comma-separated package sets (small, medium; default both)"
    )
    parser.add_argument(
        "--caches", default="warm,cold", help="comma-separated uv cache modes (warm, cold)"
    )
    args = parser.parse_args(argv)
    # Measure what a default user gets: Python writes bytecode caches.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    reps = args.reps or (2 if args.quick else 5)
    cold_reps = args.cold_reps or min(reps, 3)
    set_names = ["small"] if args.quick else ["small", "medium"]
    if args.sets:
        set_names = [name for name in SETS if name in args.sets.split(",")]
    modes = [mode for mode in ("warm", "cold") if mode in args.caches.split(",")]
    parts = set(args.only.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="uv-envs-bench-"))
    try:
        bench = Bench(tmp, reps, cold_reps)
        log(f"temp dir {tmp}; uv {bench.uv}; python {bench.python}")
        bases: dict[str, tuple[EnvManager, EnvKey]] = {}
        for set_name in set_names:
            packages = SETS[set_name]
            # Warm the caches (uv's and pip's) with this set; not timed.
            log(f"{set_name}: warming caches")
            base = bench.warm_manager(bench.fresh("base-root"), bench.warm_uv_cache)
            base_key = EnvKey("bench", "base")
            base.create(base_key, packages=packages)
            bases[set_name] = (base, base_key)
            if "create" not in parts:
                continue
            bench_pip_warmup(bench, packages)
            for mode in modes:
                log(f"{set_name} {mode}: raw uv, uv-envs new spec (API, CLI), stored lock")
                bench_create_rounds(bench, set_name, mode, base.settings.root)
                log(f"{set_name} {mode}: venv + pip")
                bench_pip(bench, set_name, mode)
            log(f"{set_name}: built venv")
            bench_built(bench, set_name, base)
        for set_name in set_names if "concurrency" in parts else ():
            log(f"{set_name}: 16 threads")
            bench_threads(bench, set_name)
            log(f"{set_name}: 8 processes")
            bench_processes(bench, set_name)
        if "metadata" in parts:
            log("status")
            bench_status(bench, *bases[set_names[-1]])
            log(f"{SYNTHETIC_ENVS} synthetic envs")
            bench_metadata(bench)
        if "bytecode" in parts and not args.quick:
            log("bytecode")
            bench_bytecode(bench)
        markdown = report(bench, set_names, modes)
    finally:
        remove_tree(tmp)
    print(markdown)
    if args.out:
        args.out.write_text(markdown)
    return 0


def bench_pip_warmup(bench: Bench, packages: Sequence[str]) -> None:
    venv = bench.fresh("pip-warmup") / "venv"
    env = base_env(PIP_CACHE_DIR=str(bench.warm_pip_cache))
    run([bench.python, "-m", "venv", venv], env=env)
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", *packages], env=env)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
