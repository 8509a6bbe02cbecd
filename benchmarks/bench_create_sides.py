"""The create of a new spec, two revisions side by side: alternating processes, one create each.

    python benchmarks/bench_create_sides.py [--before REV] [--rounds 8] [--ray off|auto]

Issue 33's "create, new spec" row is missed or met by tens of ms, less than
what a loaded machine moves between two runs of the peer benchmark. This
compares the code of ``--before`` (a git revision, default ``HEAD~1``,
exported with ``git archive`` into a scratch folder) with this checkout's on
the same machine at the same moments: each side has a root and a uv cache of
its own (warmed by a create of the set and of the extras, and their
background compile), then each round runs one fresh process per side, in
alternating order, which opens the side's root and times one in-process
create of a new spec (the medium set, one extra and a pin only that round
has), then waits for the background compile. Needs the public index. Prints
each round with the load average and the medians (and minimums).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in a side's own checkout (PYTHONPATH): argv root cache round ray [warm].
_CHILD = """
import sys, time
from pathlib import Path
from uv_envs import EnvKey, EnvManager, Settings
from uv_envs._bytecode.compiler import BackgroundCompiler
SET = ["requests", "rich", "pydantic", "click", "jinja2"]
EXTRAS = ["six", "toml", "tomli", "colorama", "itsdangerous", "blinker", "wcwidth", "pyyaml"]
root, cache, number, ray = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
manager = EnvManager(Settings(root=root, cache_dir=cache, ray=ray))
compiler = manager._core.services.bytecode.compiler
if len(sys.argv) > 5:
    manager.create(EnvKey("warm", "set"), packages=SET)
    manager.create(EnvKey("warm", "extras"), packages=EXTRAS)
else:
    packages = [*SET, EXTRAS[number % len(EXTRAS)], f"markupsafe!=0.{number}"]
    started = time.perf_counter()
    manager.create(EnvKey("wf", f"new-{number}"), packages=packages)
    print(f"{time.perf_counter() - started:.4f}")
if isinstance(compiler, BackgroundCompiler):
    compiler.wait()  # the next round starts with no compile running
"""


def export(revision: str, into: Path) -> Path:
    """The tree of ``revision`` of this checkout, unpacked under ``into``."""
    archive = into / "before.tar"
    subprocess.run(
        ["git", "-C", str(ROOT), "archive", "-o", str(archive), revision],  # noqa: S607
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(into / "before", filter="data")
    return into / "before"


def create(checkout: Path, work: Path, side: str, number: int, ray: str, *, warm: bool) -> str:
    environ = {**os.environ, "PYTHONPATH": str(checkout)}
    argv = [sys.executable, "-c", _CHILD, str(work / side), str(work / f"cache-{side}")]
    argv += [str(number), ray, *(["warm"] if warm else [])]
    done = subprocess.run(
        argv, cwd=checkout, env=environ, check=True, stdout=subprocess.PIPE, text=True
    )
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="HEAD~1", help="git revision to compare with")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--ray", default="off", help="Settings.ray of both sides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sides-") as scratch:
        work = Path(scratch)
        sides = {"before": export(args.before, work), "after": ROOT}
        for side, checkout in sides.items():
            create(checkout, work, side, 0, args.ray, warm=True)
        times: dict[str, list[float]] = {side: [] for side in sides}
        order = list(sides)
        for number in range(1, args.rounds + 1):
            for side in order if number % 2 else order[::-1]:
                seconds = float(create(sides[side], work, side, number, args.ray, warm=False))
                times[side].append(seconds)
                load = os.getloadavg()[0]
                print(f"{side:6} round {number}: {seconds:.3f} s, load {load:.1f}", flush=True)
    print(f"\n--before {args.before}, --ray {args.ray}, load now {os.getloadavg()[0]:.1f}\n")
    print("| side | median | min |\n|---|---:|---:|")
    for side, measured in times.items():
        print(f"| {side} | {statistics.median(measured):.3f} s | {min(measured):.3f} s |")


if __name__ == "__main__":
    main()
