"""Part ``create``: rows 1-4 of the create table, raw uv and venv + pip beside uv-envs."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from package_sets import SETS

from parts.common import (
    BUILT,
    NEW_API,
    NEW_CLI,
    NEW_RAY,
    NEW_SHARED,
    PIP,
    RAW,
    RAW_LOCK,
    RAW_NO_LOCK,
    RAW_SYNC,
    RAY_IMPORTABLE,
    STORED,
    Bench,
    base_env,
    counts_note,
    median,
    run,
    timed,
    timed_run,
    tree_bytes,
)
from uv_envs import EnvKey, EnvManager


def raw_pyproject(packages: Sequence[str], python_request: str) -> str:
    """The pyproject.toml uv-envs writes for an env: a non-package project uv never builds.

    JSON strings are valid TOML strings for these names and specifiers.
    """
    pinned = f"=={python_request}" if python_request.count(".") == 2 else f"=={python_request}.*"
    dependencies = "".join(f"    {json.dumps(p)},\n" for p in packages)
    return (
        "[project]\n"
        'name = "uv-envs-node"\n'
        'version = "0.0.0"\n'
        f"requires-python = {json.dumps(pinned)}\n"
        f"dependencies = [\n{dependencies}]\n"
        "\n"
        "[tool.uv]\n"
        "package = false\n"
        "\n"
        "[tool.uv-envs]\n"
        'workflow_id = "bench"\n'
        'node_id = "raw"\n'
        'version_id = ""\n'
    )


def raw_uv_once(bench: Bench, set_name: str, mode: str) -> None:
    packages = SETS[set_name]
    env = base_env(UV_PYTHON_DOWNLOADS="never")
    cache = bench.cache(mode)
    project = bench.fresh("raw")
    (project / "pyproject.toml").write_text(raw_pyproject(packages, bench.python_request))
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
        bench.note(what, set_name, mode, counts_note(seen))
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


def new_spec_once(bench: Bench, set_name: str, mode: str, rep: int, *, ray: str = "off") -> None:
    """3 (3r with ``ray="auto"``), in-process: a fresh root and a spec no root has seen."""
    packages = SETS[set_name]
    manager = bench.warm_manager(bench.fresh("root"), bench.cache(mode), ray=ray)
    spec = [*packages[:-1], f"{packages[-1]}!=0.0.{rep}"]
    seconds, _ = timed(lambda: manager.create(EnvKey("bench", "new"), packages=spec))
    what = NEW_API if ray == "off" else NEW_RAY
    bench.record(what, set_name, mode, seconds)
    if ray == "off":
        bench.seen.setdefault((NEW_API, set_name, mode), []).append(bench.counts(manager))


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


def stored_once(bench: Bench, set_name: str, mode: str, base_root: Path) -> None:
    """4a: a fresh root that has only the first root's lockstore: resolution is skipped."""
    packages = SETS[set_name]
    root = bench.fresh("root")
    shutil.copytree(base_root / "lockstore", root / "lockstore")
    manager = bench.warm_manager(root, bench.cache(mode))
    seconds, _ = timed(lambda: manager.create(EnvKey("bench", "second"), packages=packages))
    bench.record(STORED, set_name, mode, seconds)
    bench.seen.setdefault((STORED, set_name, mode), []).append(bench.counts(manager))


def bench_built(bench: Bench, set_name: str, base: EnvManager) -> None:
    """3' and 4b on the base root, whose venv for this resolution is built."""
    packages = SETS[set_name]
    sizes = []
    seen = []
    for rep in range(bench.reps * 4):  # fast: more samples for a steadier median
        before = bench.counts(base)
        key = EnvKey("bench", f"built-{rep}")
        seconds, environment = timed(lambda: base.create(key, packages=packages))  # noqa: B023
        after = bench.counts(base)
        seen.append(tuple(a - b for a, b in zip(after, before, strict=True)))
        bench.record(BUILT, set_name, "warm", seconds)
        sizes.append(tree_bytes(environment.env_path))
    bench.note(BUILT, set_name, "warm", counts_note(seen))
    bench.extra[f"uv_runs {BUILT} {set_name} warm"] = sorted({c[2] for c in seen})
    bench.extra[f"disk_per_env_{set_name}"] = (
        median([a for a, _ in sizes]),
        median([b for _, b in sizes]),
    )
    seen = []
    for rep in range(bench.reps):
        before = bench.counts(base)
        spec = [*packages[:-1], f"{packages[-1]}!=0.1.{rep}"]
        key = EnvKey("bench", f"shared-{rep}")
        seconds, _ = timed(lambda: base.create(key, packages=spec))  # noqa: B023
        after = bench.counts(base)
        seen.append(tuple(a - b for a, b in zip(after, before, strict=True)))
        bench.record(NEW_SHARED, set_name, "warm", seconds)
    bench.note(NEW_SHARED, set_name, "warm", counts_note(seen))


def bench_pip_warmup(bench: Bench, packages: Sequence[str]) -> None:
    venv = bench.fresh("pip-warmup") / "venv"
    env = base_env(PIP_CACHE_DIR=str(bench.warm_pip_cache))
    run([bench.python, "-m", "venv", venv], env=env)
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", *packages], env=env)
