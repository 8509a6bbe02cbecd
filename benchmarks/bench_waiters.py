"""N processes that need the same new env on one node at once: installs, and CPU per waiter.

    python benchmarks/bench_waiters.py [--waiters 64] [--set medium] [--out FILE]

What N Ray tasks landing on one node for a new env do on that node: each
process imports uv-envs and opens the node's root, then all are released
together and call ``ensure`` of one key (the medium set, an empty uv cache, so
the one install takes seconds). Counted: store entries built (must be 1) and
``create`` operations in the audit log (must be 1: the others hand out the
env); measured: each process's own CPU time inside ``ensure`` (``RUSAGE_SELF``:
uv's CPU is the builder's children, not counted), so a waiter's figure is what
waiting costs it (the env lock's polls, then the READY env handed out).

The floors, in the same run and the same kind of process: N more processes
released together once the env is READY (an ``ensure`` that waits for
nothing), N calling ``EnvManager.status`` of it (a read that writes nothing),
and in every process the CPU of importing uv-envs and opening the root, which
a task pays before any of this. Needs the public index. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from package_sets import SETS  # noqa: E402 - beside this script

from uv_envs import EnvManager, Settings  # noqa: E402

TARGET_MS = 10.0

WORKER = """
import resource
start = resource.getrusage(resource.RUSAGE_SELF)
import json, sys, time
from pathlib import Path
from uv_envs import EnvKey, EnvManager, Settings
mode, packages = sys.argv[1], sys.argv[5:]
root, cache, go = (Path(arg) for arg in sys.argv[2:5])
manager = EnvManager(Settings(root=root, cache_dir=cache, ray="off", background_bytecode=False))
opened = resource.getrusage(resource.RUSAGE_SELF)
while not go.exists():
    time.sleep(0.005)
before = resource.getrusage(resource.RUSAGE_SELF)
wall = time.perf_counter()
key = EnvKey("waiters", "one")
if mode == "status":
    manager.status(key)
else:
    manager.ensure(key, packages=packages)
after = resource.getrusage(resource.RUSAGE_SELF)
def cpu(a, b):
    return (b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)
wall = time.perf_counter() - wall
print(json.dumps({"cpu": cpu(before, after), "wall": wall, "open": cpu(start, opened)}))
"""


def _wave(mode: str, root: Path, cache: Path, packages: tuple[str, ...], count: int) -> list[Any]:
    """Start ``count`` processes, release them together, return what each measured."""
    go = root.parent / f"go-{mode}-{time.monotonic_ns()}"
    command = [sys.executable, "-c", WORKER, mode, str(root), str(cache), str(go), *packages]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    time.sleep(max(5.0, count * 0.25))  # every process imported and opened the root
    go.write_text("go")
    return [json.loads(p.communicate(timeout=1800)[0]) for p in processes]


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f} ms"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.95) - 1)]


def _table(args: argparse.Namespace, waves: dict[str, list[Any]], counts: tuple[int, int]) -> str:
    cpu = sorted(r["cpu"] for r in waves["first"])
    waiters = cpu[:-1]  # the builder spent the most (its own share of the build)
    ready = [r["cpu"] for r in waves["ready"]]
    status = [r["cpu"] for r in waves["status"]]
    opened = [r["open"] for wave in waves.values() for r in wave]
    median = statistics.median(waiters) * 1000
    lines = [
        (
            f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, load average "
            f"{os.getloadavg()[0]:.1f}; Python {platform.python_version()}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; set {args.set}"
        ),
        "",
        (
            "| processes | store entries built | create operations | wall, median "
            "| CPU per waiter, median | p95 | max | builder's CPU |"
        ),
        "|---|---|---|---|---|---|---|---|",
        (
            f"| {args.waiters} | {counts[0]} | {counts[1]} "
            f"| {statistics.median(r['wall'] for r in waves['first']):.2f} s "
            f"| {median:.1f} ms | {_p95(waiters) * 1000:.1f} ms | {waiters[-1] * 1000:.1f} ms "
            f"| {cpu[-1] * 1000:.0f} ms |"
        ),
        "",
        (
            f"Target < {TARGET_MS:.0f} ms per waiter: "
            f"{'met' if median < TARGET_MS else 'missed'} ({median / TARGET_MS:.2f}x the target)."
        ),
        "",
        "| floor, same run, processes released together | CPU, median | p95 |",
        "|---|---|---|",
        f"| `ensure` of the READY env | {_ms(ready)} | {_p95(ready) * 1000:.1f} ms |",
        f"| `EnvManager.status` of it | {_ms(status)} | {_p95(status) * 1000:.1f} ms |",
        (
            f"| importing uv-envs and opening the root, before either | {_ms(opened)} "
            f"| {_p95(opened) * 1000:.1f} ms |"
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run N processes against one root and print what they cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", type=int, default=64)
    parser.add_argument("--set", default="medium", choices=sorted(SETS))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    packages = SETS[args.set]
    with tempfile.TemporaryDirectory(prefix="bench-waiters-") as temp:
        root, cache = Path(temp) / "root", Path(temp) / "cache"
        waves = {"first": _wave("ensure", root, cache, packages, args.waiters)}
        waves["ready"] = _wave("ensure", root, cache, packages, args.waiters)
        waves["status"] = _wave("status", root, cache, packages, args.waiters)
        manager = EnvManager(Settings(root=root, cache_dir=cache, ray="off"))
        entries = len([p for p in (root / "store").iterdir() if p.is_dir()])
        creates = sum(
            record.operation == "create"
            for record in manager.operations(workflow_id="waiters", limit=1000).items
        )
        manager.close()
    text = _table(args, waves, (entries, creates))
    sys.stdout.write(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
