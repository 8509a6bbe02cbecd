"""One runner for every benchmark script: list them, run some by name, or run them all.

    python -m benchmarks --list                        # each benchmark, what it needs, its usage
    python -m benchmarks waiters --waiters 8           # one, with its own options
    python -m benchmarks grpc http -- --threads 4      # several; options after -- go to each
    python -m benchmarks --all                         # every one in turn, then a summary

A benchmark is a ``bench_<name>.py`` script beside this file that runs on its own
(``if __name__ == "__main__"``; ``bench_trial.py`` is a part of ``bench_soak.py``), and
``compare``, the side-by-side run of ``run.py``. Each runs as its own ``python`` process,
exactly as ``python benchmarks/bench_<name>.py ARGS`` would: the runner adds nothing
to what it measures. Run it from the checkout's root (``-m`` finds ``benchmarks`` there).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The side-by-side benchmark kept its historical name; every other one is bench_<name>.py.
NAMED = {"compare": HERE / "run.py"}
USAGE = (__doc__ or "").split("\n\n")[1]


def benchmarks() -> dict[str, Path]:
    """Every benchmark by name, in the order ``--all`` runs them."""
    found = dict(NAMED)
    for script in sorted(HERE.glob("bench_*.py")):
        if "__main__" in script.read_text():
            found[script.stem.removeprefix("bench_")] = script
    return found


def describe(script: Path) -> tuple[str, str]:
    """The first line of a script's docstring, and its usage line (``python benchmarks/...``)."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    lines = [line.strip() for line in doc.splitlines()]
    usage = next((line for line in lines if "python benchmarks/" in line), "")
    return (lines[0] if lines else ""), usage


def show(found: dict[str, Path]) -> None:
    width = max(map(len, found))
    for name, script in found.items():
        summary, usage = describe(script)
        print(f"{name:<{width}}  {summary}")
        if usage:
            print(f"{'':<{width}}    {usage}")


def split(argv: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """(runner options, names, the benchmark's own arguments).

    Names run until ``--`` or the first option; everything after goes to each script,
    so ``waiters --waiters 8`` needs no ``--``.
    """
    options, names, passed = [], [], list(argv)
    while passed and passed[0] in {"--list", "--all", "-h", "--help"}:
        options.append(passed.pop(0))
    while passed and not passed[0].startswith("-"):
        names.append(passed.pop(0))
    if passed and passed[0] == "--":
        passed.pop(0)
    return options, names, passed


def run(found: dict[str, Path], names: list[str], passed: list[str]) -> int:
    results = []
    for name in names:
        print(f"== {name}: {found[name].name} {' '.join(passed)}".rstrip(), flush=True)
        start = time.monotonic()
        code = subprocess.run([sys.executable, str(found[name]), *passed], check=False).returncode
        results.append((name, code, time.monotonic() - start))
    if len(results) > 1:
        print("\n| benchmark | exit | seconds |\n|---|---:|---:|")
        for name, code, seconds in results:
            print(f"| {name} | {code} | {seconds:.0f} |")
    return int(any(code != 0 for _, code, _ in results))


def main(argv: Sequence[str] | None = None) -> int:
    options, names, passed = split(sys.argv[1:] if argv is None else argv)
    found = benchmarks()
    if "-h" in options or "--help" in options:
        print(USAGE)
        return 0
    if "--list" in options:
        show(found)
        return 0
    unknown = [name for name in names if name not in found]
    if unknown:
        print(f"no benchmark named {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    if "--all" in options:
        if names or passed:
            print("--all runs each with its defaults: no names or options", file=sys.stderr)
            return 2
        names = list(found)
    if not names:
        print(USAGE, file=sys.stderr)
        return 2
    return run(found, names, passed)


if __name__ == "__main__":
    raise SystemExit(main())
