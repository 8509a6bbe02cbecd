"""Attestation's costs: the digest and manifest at install against the create, the hand-out check.

    python benchmarks/bench_attest.py [--sets medium example medium-ray] [--reps 3] [--checks 30]

Issue 30's benchmark targets, for the medium set and the example set
(langchain and chromadb, as in ``bench_ray_floor.py``); ``medium-ray`` is the
medium set with Ray (about 8,000 files). Per set: a
create of a new spec on a warm uv cache (PyPI; the first create of each set
fills the cache and is not counted), the env digest from ``RECORD`` and the
manifest that an install writes (target: both together < 2% of the create),
and the cheap hand-out check of the built venv (``quick_check``: target < 5 ms
for the example set) with, in the same run, its floor: a bare loop of
``os.stat`` over the same files by their full paths; and a Ray worker's start
through the launcher (``uv_envs/_store/stamps.py``: the env's ``python -I -S``,
the check, ``exec``) against that interpreter started alone. Medians; the
machine's load is printed first. ``bench_verify.py`` measures a full ``verify``.
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

from package_sets import MEDIUM  # noqa: E402 - beside this script

from uv_envs import EnvKey, EnvManager, Settings  # noqa: E402
from uv_envs._store import digest as digest_module  # noqa: E402
from uv_envs._store import stamps  # noqa: E402
from uv_envs._store.digest import recorded_digest, recorded_files  # noqa: E402
from uv_envs._store.manifest import quick_check, write_manifest  # noqa: E402

#: ``example`` is the design's (what bench_ray_floor and bench_fanout call so); ``medium-ray``
#: is the medium set with Ray, what a WTB node on the in-process route holds.
SETS = {"medium": MEDIUM, "medium-ray": (*MEDIUM, "ray"), "example": ("langchain", "chromadb")}


def _median(run: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def bench_set(name: str, packages: tuple[str, ...], base: Path, reps: int, checks: int) -> None:
    cache = base / "uv-cache"
    manager = EnvManager(Settings(root=base / f"root-{name}", cache_dir=cache))
    manager.create(EnvKey("warm", name), packages=list(packages))  # fills the uv cache
    creates = []
    for rep in range(reps):
        # A new spec each time (an extra pin no one else asks for), so the store builds anew.
        spec = [*packages, f"six=={('1.16.0', '1.17.0', '1.15.0')[rep % 3]}"]
        started = time.perf_counter()
        manager.create(EnvKey("bench", f"{name}-{rep}"), packages=spec)
        creates.append(time.perf_counter() - started)
    create = statistics.median(creates)
    venv = manager.get(EnvKey("bench", f"{name}-0")).env_path / ".venv"
    base_dir = os.path.realpath(venv)
    paths = [f"{base_dir}/{path}" for path, _ in recorded_files(venv)]

    def install_digest() -> None:
        digest_module._last_read.clear()  # as at install: RECORD not read yet  # noqa: SLF001
        recorded_digest(venv)

    # As an install runs them: the digest reads RECORD, the manifest right after reuses it.
    digest = _median(install_digest, reps)
    manifest = _median(lambda: write_manifest(venv), reps)
    assert quick_check(venv) == [], "the copy just built must pass"
    quick_check(venv)  # warm: the page cache, the dentries

    def floor() -> None:
        stat = os.stat
        for path in paths:
            try:
                stat(path)
            except OSError:
                continue

    floor()
    check = _median(lambda: quick_check(venv), checks)
    bare = _median(floor, checks)
    # A Ray worker's start through the launcher (the env's python -I -S, the check, exec)
    # against the same interpreter started bare; /bin/true stands in for the worker.
    python = str(venv / "bin" / "python")
    launch = [
        python,
        "-I",
        "-S",
        stamps.__file__,
        str(venv),
        shutil.which("true") or "/bin/true",
        "-",
    ]
    launcher = _median(lambda: subprocess.run(launch, check=True), min(checks, 10))
    started = _median(
        lambda: subprocess.run([python, "-I", "-S", "-c", ""], check=True), min(checks, 10)
    )
    share = (digest + manifest) / create * 100
    print(
        f"| {name} | {len(paths)} | {create:.2f} s | {digest * 1e3:.0f} ms | "
        f"{manifest * 1e3:.0f} ms | {share:.1f}% | {check * 1e3:.1f} ms | {bare * 1e3:.1f} ms | "
        f"{launcher * 1e3:.0f} ms | {started * 1e3:.0f} ms |"
    )
    sys.stdout.flush()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", choices=sorted(SETS), default=["medium", "example"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--checks", type=int, default=30)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(
        "| set | files | create (new spec) | digest | manifest | both / create | "
        "hand-out check | floor (bare os.stat loop) | worker launcher | python -I -S alone |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    base = Path(tempfile.mkdtemp(prefix="attest-"))
    try:
        for name in args.sets:
            bench_set(name, SETS[name], base, args.reps, args.checks)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
