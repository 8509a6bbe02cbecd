"""Verify's throughput: hashing a venv's files (MB/s) against ``sha256sum`` of them in parallel.

    python benchmarks/bench_verify.py [--venv PATH] [--reps 3]

Issue 30, item 5. Over one venv (by default the one running this script), every
file its ``RECORD`` files list is hashed the way ``verify`` does (a thread pool,
each file read once; ``uv_envs._store.damage``) and by ``sha256sum`` through
``xargs -P <cores>``; both run on a warm page cache (a first pass is thrown
away) and the medians are printed. Also the env digest from ``RECORD`` alone,
what an install pays. Needs no network.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from packaging.utils import canonicalize_name  # noqa: E402

from uv_envs._store.damage import _check_files  # noqa: E402
from uv_envs._store.digest import record_rows, recorded_digest, site_packages  # noqa: E402


def _median_seconds(run: object, reps: int) -> float:
    assert callable(run)
    run()  # warms the page cache
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path(sys.prefix))
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    venv: Path = args.venv
    site = site_packages(venv)
    if site is None:
        sys.exit(f"{venv} has no site-packages")
    installed = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        installed[str(canonicalize_name(name))] = (version, info)
    paths = sorted(
        {
            os.path.normpath(site / row_path)
            for _, info in installed.values()
            if (info / "RECORD").is_file()
            for row_path, _ in record_rows(info / "RECORD")
        }
    )
    paths = [p for p in paths if Path(p).is_file()]
    megabytes = sum(Path(p).stat().st_size for p in paths) / 1e6
    cores = os.cpu_count() or 1

    xargs = shutil.which("xargs") or "xargs"

    def sha256sum() -> None:
        subprocess.run(
            [xargs, "-0", "-P", str(cores), "-n", "64", "sha256sum"],
            input="\0".join(paths).encode(),
            stdout=subprocess.DEVNULL,
            check=True,
        )

    ours = _median_seconds(lambda: _check_files(venv, site, installed), args.reps)
    theirs = _median_seconds(sha256sum, args.reps)
    digest = _median_seconds(lambda: recorded_digest(venv), args.reps)
    print(f"venv {venv}: {len(installed)} distributions, {len(paths)} files, {megabytes:.0f} MB")
    print("| what | seconds | MB/s |")
    print("|---|---|---|")
    print(f"| verify's hashing (threads) | {ours:.2f} | {megabytes / ours:.0f} |")
    print(f"| sha256sum, xargs -P {cores} | {theirs:.2f} | {megabytes / theirs:.0f} |")
    print(f"| env digest from RECORD (install) | {digest:.3f} | - |")
    print(f"verify / sha256sum: {ours / theirs:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
