"""What every part of ``run.py`` shares: the bench state, timing, subprocesses, row names.

Only the public API: ``uv_envs``, ``uv_envs.testing``, and the uv binary of the ``uv``
package (``uv.find_uv_bin()``) for the manager and the raw-uv baseline alike.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import statistics
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import uv

from uv_envs import BytecodeCompiler, EnvManager, Interpreter, Settings, SubprocessUvExecutor
from uv_envs.testing import CountingExecutor

ROOT = Path(__file__).resolve().parents[2]

#: Row 3r runs only where this Python has Ray (the link it measures needs one).
RAY_IMPORTABLE = importlib.util.find_spec("ray") is not None

#: What would steer uv, pip or Python away from a default user's run: the benchmark's
#: subprocesses (raw uv, pip, the CLI, workers) run without it.
SCRUBBED_PREFIXES = ("UV_", "PIP_")
SCRUBBED_NAMES = frozenset(
    {"VIRTUAL_ENV", "CONDA_PREFIX", "PYTHONHOME", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE"}
)


def base_env(**extra: str) -> dict[str, str]:
    """The environment of a default user: no uv/pip steering, and bytecode writes allowed."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(SCRUBBED_PREFIXES) and name not in SCRUBBED_NAMES
    }
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


def default_interpreter(installed: Sequence[Interpreter], request: str) -> Interpreter:
    """The interpreter a create picks for ``request``: the running one when it matches."""
    running = Path(sys.executable).resolve()
    matching = [i for i in installed if i.matches(request)]
    for interpreter in matching:
        if interpreter.path.resolve() == running:
            return interpreter
    if not matching:
        raise RuntimeError(f"no installed Python matches {request!r}: {installed}")
    return matching[0]


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


class Bench:
    """State shared by the measurements: the temp dir, uv, the interpreter, the results."""

    def __init__(self, tmp: Path, reps: int, cold_reps: int) -> None:
        self.tmp = tmp
        self.reps = reps
        self.cold_reps = cold_reps
        self.uv = uv.find_uv_bin()
        self.counter = 0
        self.warm_uv_cache = tmp / "uv-cache-warm"
        self.warm_pip_cache = tmp / "pip-cache-warm"
        self.executors: weakref.WeakKeyDictionary[EnvManager, CountingExecutor] = (
            weakref.WeakKeyDictionary()
        )
        probe = self.manager(self.fresh("probe-root"), self.warm_uv_cache)
        self.python_request = probe.settings.default_python
        started = time.perf_counter()
        installed = probe.pythons()
        self.discovery_s = time.perf_counter() - started
        self.interpreter = default_interpreter(installed, self.python_request)
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

    def manager(
        self,
        root: Path,
        cache: Path,
        compiler: BytecodeCompiler | None = None,
        **settings: Any,  # noqa: ANN401 - Settings fields
    ) -> EnvManager:
        """A manager on ``root``; background compiles and the Ray link only where asked for.

        Compiles are off by default so that one left running by one part never
        competes with the measurements of another; part 8 compares on and off.
        The Ray link is off so that uv-envs makes what raw uv and pip make (a
        venv that is no Ray worker); row 3r measures what the link costs.
        """
        executor = CountingExecutor(SubprocessUvExecutor(self.uv))
        options = {"background_bytecode": False, "ray": "off", **settings}
        manager = EnvManager(
            Settings(root=root, cache_dir=cache, uv_binary=self.uv, **options),
            executor=executor,
            compiler=compiler,
        )
        self.executors[manager] = executor
        return manager

    def warm_manager(
        self,
        root: Path,
        cache: Path,
        compiler: BytecodeCompiler | None = None,
        **settings: Any,  # noqa: ANN401 - ditto
    ) -> EnvManager:
        """A manager as a long-running process has it: audit DB open.

        Its interpreter needs no warming: the default version is the running
        Python's, which a create finds without a scan.
        """
        manager = self.manager(root, cache, compiler, **settings)
        manager.operations(limit=1)
        return manager

    def record(self, what: str, set_name: str, mode: str, seconds: float) -> None:
        self.samples.setdefault((what, set_name, mode), []).append(seconds)

    def note(self, what: str, set_name: str, mode: str, text: str) -> None:
        self.notes[(what, set_name, mode)] = text

    def reps_for(self, mode: str) -> int:
        return self.cold_reps if mode == "cold" else self.reps

    def counts(self, manager: EnvManager) -> tuple[int, int, int]:
        """(resolutions, installs, uv subprocesses of any kind) ``manager`` ran so far."""
        executor = self.executors[manager]
        return executor.count("lock", check=False), executor.count("sync"), len(executor.calls)


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


def counts_note(seen: Iterable[tuple[int, ...]]) -> str:
    distinct = sorted(set(seen))
    return ", ".join(
        f"{c[0]} resolution(s), {c[1]} install(s)" + (f", {c[2]} uv run(s)" if c[2:] else "")
        for c in distinct
    )


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
