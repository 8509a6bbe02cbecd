"""N processes that need the same new env on one node at once: installs, and CPU per waiter.

    python benchmarks/bench_waiters.py [--waiters 64] [--set medium] [--out FILE]

What N Ray tasks landing on one node for a new env do on that node: each
process imports uv-envs and opens the node's root, then all are released
together and call ``ensure`` of one key (the medium set, an empty uv cache, so
the one install takes seconds). Counted: store entries built (must be 1) and
``uv sync`` runs in the audit log; measured: each process's own CPU time inside
``ensure`` (``RUSAGE_SELF``: uv's CPU is the builder's children, not counted),
so a waiter's figure is what waiting costs it (the env lock's polling, then
reading the READY env). Needs the public index. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
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

WORKER = """
import json, resource, sys, time
from pathlib import Path
from uv_envs import EnvKey, EnvManager, Settings
root, cache, go, packages = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4:]
manager = EnvManager(Settings(root=root, cache_dir=cache, ray="off", background_bytecode=False))
while not go.exists():
    time.sleep(0.005)
before = resource.getrusage(resource.RUSAGE_SELF)
start = time.perf_counter()
manager.ensure(EnvKey("waiters", "one"), packages=packages)
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
print(json.dumps({"cpu": cpu, "wall": time.perf_counter() - start}))
"""


def _wave(root: Path, cache: Path, go: Path, packages: tuple[str, ...], count: int) -> list[Any]:
    """Start ``count`` processes, release them together, return what each measured."""
    command = [sys.executable, "-c", WORKER, str(root), str(cache), str(go), *packages]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(count)]
    time.sleep(max(5.0, count * 0.25))  # every process imported and opened the root
    go.write_text("go")
    return [json.loads(p.communicate(timeout=1800)[0]) for p in processes]


def main(argv: list[str] | None = None) -> int:
    """Run N processes against one root and print what they cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiters", type=int, default=64)
    parser.add_argument("--set", default="medium")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    packages = SETS[args.set]
    with tempfile.TemporaryDirectory(prefix="bench-waiters-") as temp:
        root, cache = Path(temp) / "root", Path(temp) / "cache"
        results = _wave(root, cache, Path(temp) / "go-1", packages, args.waiters)
        # The same processes once the env is READY: what ensure costs without any wait.
        ready = _wave(root, cache, Path(temp) / "go-2", packages, args.waiters)
        manager = EnvManager(Settings(root=root, cache_dir=cache, ray="off"))
        entries = len([p for p in (root / "store").iterdir() if p.is_dir()])
        syncs = sum(
            record.operation == "create"
            for record in manager.operations(workflow_id="waiters", limit=1000).items
        )
        manager.close()
    cpu = sorted(r["cpu"] for r in results)
    waiters = cpu[:-1]  # the builder is the one that spent the most (its own share of the build)
    lines = [
        (
            f"Machine: {platform.platform()}, Python {platform.python_version()}; "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        ),
        "",
        (
            "| processes | store entries built | create operations | wall (median) "
            "| CPU per waiter, median | p95 | max | builder's CPU | READY env, median |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
        (
            f"| {args.waiters} | {entries} | {syncs} "
            f"| {statistics.median(r['wall'] for r in results):.2f} s "
            f"| {statistics.median(waiters) * 1000:.1f} ms "
            f"| {waiters[int(len(waiters) * 0.95) - 1] * 1000:.1f} ms "
            f"| {waiters[-1] * 1000:.1f} ms "
            f"| {cpu[-1] * 1000:.0f} ms "
            f"| {statistics.median(r['cpu'] for r in ready) * 1000:.1f} ms |"
        ),
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
