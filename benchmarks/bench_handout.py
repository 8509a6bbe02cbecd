"""Ready to run on a new spec: the create, then the first import of its set in a fresh process.

    python benchmarks/bench_handout.py [--rounds 5] [--out FILE]

Issue 33, item 1: what a node started right after the create of a new spec
waits for. Four roots side by side, one uv cache shared by all (warmed by one
throwaway create of the set in each root, and of the extras), alternating
rounds; each round creates, in each root, a new store entry (the set plus one
small extra package, another each round), then imports the set in a fresh
process (``PYTHONDONTWRITEBYTECODE=1``, as on the development machine, so the
import finds only what the entry holds), then creates the same spec under a
second key:

* ``linked``: the default; the root's ``bytecode/`` knows the wheels (the
  throwaway create's background compile filled it), so the entry is handed out
  compiled (the linking step, started before the sync; timed is what the
  create still waits for it once the digest is written: ``EarlyLink.finish``);
* ``novel``: the default with ``bytecode/`` emptied before each create, as on a
  root's first spec: the background compile runs while the import does (what
  every new entry did before issue 33);
* ``uv-compile``: ``compile_bytecode=True`` (uv's ``--compile-bytecode``, every
  module, all cores, before the create returns);
* ``off``: ``background_bytecode=False``: no ``.pyc``, the import compiles in
  memory and nothing competes (what a writable venv without bytecode gives).

Needs the public index. Prints the rounds and a markdown table of medians.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from uv_envs import EnvKey, EnvManager, Settings  # noqa: E402
from uv_envs._bytecode.compiler import BackgroundCompiler  # noqa: E402
from uv_envs._bytecode.early import EarlyLink  # noqa: E402

SET = ["requests", "rich", "pydantic", "click", "jinja2"]
IMPORTS = "import requests, rich, pydantic, click, jinja2"
EXTRAS = [
    "six",
    "toml",
    "tomli",
    "colorama",
    "itsdangerous",
    "blinker",
    "wcwidth",
    "pyyaml",
    "iniconfig",
    "pluggy",
]
#: mode -> (compile_bytecode, background_bytecode)
MODES = {
    "linked": (False, True),
    "novel": (False, True),
    "uv-compile": (True, True),
    "off": (False, False),
}

_prepared: list[float] = []


def _timing(finish: Callable[..., str]) -> Callable[..., str]:
    def timed(early: EarlyLink, *args: object, **kwargs: object) -> str:
        started = time.perf_counter()
        try:
            return finish(early, *args, **kwargs)
        finally:
            _prepared.append(time.perf_counter() - started)

    return timed


def _wait(manager: EnvManager) -> None:
    compiler = manager._core.services.bytecode.compiler  # noqa: SLF001 - a benchmark's view
    if isinstance(compiler, BackgroundCompiler):
        compiler.wait()


def _round(manager: EnvManager, mode: str, number: int) -> tuple[float, float, float, float]:
    """(create, its linking step, first import, second key) for one new spec."""
    if mode == "novel":
        shutil.rmtree(manager.settings.root / "bytecode", ignore_errors=True)
    packages = [*SET, EXTRAS[number % len(EXTRAS)]]
    _prepared.clear()
    started = time.perf_counter()
    environment = manager.create(EnvKey("wf", f"new-{number}"), packages=packages)
    created = time.perf_counter()
    python = str(environment.env_path / ".venv" / "bin" / "python")
    environ = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run([python, "-c", IMPORTS], check=True, env=environ)
    imported = time.perf_counter()
    manager.create(EnvKey("wf", f"again-{number}"), packages=packages)
    again = time.perf_counter() - imported
    _wait(manager)  # each round starts with no compile running
    return created - started, sum(_prepared), imported - created, again


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    EarlyLink.finish = _timing(EarlyLink.finish)  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="handout-") as scratch:
        base = Path(scratch)
        managers = {
            mode: EnvManager(
                Settings(
                    root=base / mode,
                    cache_dir=base / "cache",
                    compile_bytecode=at_install,
                    background_bytecode=background,
                )
            )
            for mode, (at_install, background) in MODES.items()
        }
        for manager in managers.values():
            manager.create(EnvKey("warm", "set"), packages=SET)
            manager.create(EnvKey("warm", "extras"), packages=EXTRAS)
            _wait(manager)
        rows: dict[str, list[tuple[float, float, float, float]]] = {m: [] for m in managers}
        order = list(managers)
        for number in range(args.rounds):
            for mode in order if number % 2 == 0 else order[::-1]:
                row = _round(managers[mode], mode, number)
                rows[mode].append(row)
                print(
                    f"{mode:10} round {number}: create {row[0]:.3f} s (linking {row[1]:.3f}), "
                    f"first import {row[2]:.3f} s, second key {row[3] * 1000:.1f} ms, "
                    f"load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
    lines = [
        "| mode | create | of which linking (waited) | first import | ready to run | second key |",
        "|---|---|---|---|---|---|",
    ]
    for mode, measured in rows.items():
        create, linking, first, again = (
            statistics.median(column) for column in zip(*measured, strict=True)
        )
        lines.append(
            f"| {mode} | {create:.3f} s | {linking * 1000:.0f} ms | {first:.3f} s "
            f"| {create + first:.3f} s | {again * 1000:.1f} ms |"
        )
    table = "\n".join(lines)
    print(table)
    if args.out is not None:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
