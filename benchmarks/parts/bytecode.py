"""Part ``bytecode`` (medium set): none, a background compile, or compiled at install time.

The manager's own background compiler has no public way to wait for it, so this
part hands the manager :class:`WaitableCompiler`, which runs the same worker
the same way (``CompileJob.run()``), and can be waited for.
"""

from __future__ import annotations

import functools
import threading
import time

import attrs
from package_sets import MEDIUM

from parts.common import Bench, base_env, median, timed, timed_run, tree_bytes
from uv_envs import CompileJob, EnvKey

IMPORTS = "import pandas, numpy, pydantic, fastapi, sqlalchemy, jinja2, click, rich, httpx"


@attrs.define
class WaitableCompiler:
    """A ``BytecodeCompiler`` whose jobs can be waited for, with each job's outcome."""

    outcomes: dict[str, str] = attrs.field(factory=dict)
    _threads: list[threading.Thread] = attrs.field(factory=list)

    def submit(self, job: CompileJob) -> None:
        thread = threading.Thread(target=self._run, args=(job,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _run(self, job: CompileJob) -> None:
        self.outcomes[str(job.venv)] = job.run()  # as the manager's compiler runs it

    def wait(self) -> None:
        for thread in self._threads:
            thread.join()


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
            compiler = WaitableCompiler()
            manager = bench.warm_manager(
                bench.fresh("root"), bench.warm_uv_cache, compiler=compiler, **options
            )
            key = EnvKey("bench", "imp")
            took, environment = timed(functools.partial(manager.create, key, packages=MEDIUM))
            samples[mode]["create"].append(took)
            if mode == "background":
                other = bench.warm_manager(bench.fresh("root"), bench.warm_uv_cache)
                started = time.perf_counter()
                during.append(timed(functools.partial(other.create, key, packages=MEDIUM))[0])
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
