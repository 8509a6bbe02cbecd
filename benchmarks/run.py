"""Side-by-side benchmark of uv-envs against raw uv and venv + pip; prints a markdown table.

    python benchmarks/run.py [--quick] [--reps N] [--cold-reps N] [--out FILE]

Everything it writes (roots, project dirs, uv and pip caches) lives under one
temporary directory that is removed at the end; the user's caches are never
touched. Figures are medians over ``--reps`` repetitions (5 by default; cold
uv/pip caches use ``--cold-reps``, 3 by default, since each downloads the set
again). ``--quick`` runs 2 repetitions of the small set only, as a smoke test.

What is measured (docs/performance.md explains each figure):

1. raw uv by hand: ``uv venv`` + ``uv lock`` + ``uv sync --frozen`` in a
   project dir, with the flags uv-envs passes (the floor);
2. ``python -m venv`` + ``pip install`` (pip's cache in the temp dir);
3. uv-envs create of a new spec, in-process and through the CLI;
4. uv-envs create of a spec whose lock is stored, with its venv (a) not built
   yet and (b) already built; disk used per extra env;
5. 16 concurrent ensures of one key (threads), 8 keys with one spec (processes);
6. status of one env, list of 10,000 synthetic envs;
7. cleanup scan over those 10,000 envs; with 500 more processes on the host,
   the ``/proc`` scan that keeps envs in use, cleanup and a refused delete;
8. bytecode, medium set: none, compiled in the background after the create,
   or at install time; first import with ``PYTHONDONTWRITEBYTECODE=1``, and a
   create while a background compile runs.

The parts live in ``parts/`` (one module each, and ``parts/report.py`` for the
tables); they use only the public API of uv-envs and ``uv_envs.testing``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from package_sets import SETS  # noqa: E402 - beside this script
from parts.bytecode import bench_bytecode  # noqa: E402
from parts.common import Bench, log, remove_tree  # noqa: E402
from parts.concurrency import bench_processes, bench_threads  # noqa: E402
from parts.create import (  # noqa: E402
    bench_built,
    bench_create_rounds,
    bench_pip,
    bench_pip_warmup,
)
from parts.liveness import PROCESSES, bench_liveness  # noqa: E402
from parts.metadata import SYNTHETIC_ENVS, bench_metadata, bench_status  # noqa: E402
from parts.report import report  # noqa: E402

from uv_envs import EnvKey, EnvManager  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0915 - options, runs and report, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repetitions, small set only")
    parser.add_argument("--reps", type=int, default=None, help="repetitions (default 5)")
    parser.add_argument(
        "--cold-reps", type=int, default=None, help="repetitions with a cold cache (default 3)"
    )
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    parser.add_argument(
        "--only",
        default="create,concurrency,metadata,bytecode",
        help="comma-separated parts to run (create, concurrency, metadata, bytecode)",
    )
    parser.add_argument(
        "--sets", default=None, help="comma-separated package sets (small, medium; default both)"
    )
    parser.add_argument(
        "--caches", default="warm,cold", help="comma-separated uv cache modes (warm, cold)"
    )
    args = parser.parse_args(argv)
    # Measure what a default user gets: Python writes bytecode caches.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    reps = args.reps or (2 if args.quick else 5)
    cold_reps = args.cold_reps or min(reps, 3)
    set_names = ["small"] if args.quick else ["small", "medium"]
    if args.sets:
        set_names = [name for name in SETS if name in args.sets.split(",")]
    modes = [mode for mode in ("warm", "cold") if mode in args.caches.split(",")]
    parts = set(args.only.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="uv-envs-bench-"))
    try:
        bench = Bench(tmp, reps, cold_reps)
        log(f"temp dir {tmp}; uv {bench.uv}; python {bench.python}")
        bases: dict[str, tuple[EnvManager, EnvKey]] = {}
        for set_name in set_names:
            packages = SETS[set_name]
            # Warm the caches (uv's and pip's) with this set; not timed.
            log(f"{set_name}: warming caches")
            base = bench.warm_manager(bench.fresh("base-root"), bench.warm_uv_cache)
            base_key = EnvKey("bench", "base")
            base.create(base_key, packages=packages)
            bases[set_name] = (base, base_key)
            if "create" not in parts:
                continue
            bench_pip_warmup(bench, packages)
            for mode in modes:
                log(f"{set_name} {mode}: raw uv, uv-envs new spec (API, CLI), stored lock")
                bench_create_rounds(bench, set_name, mode, base.settings.root)
                log(f"{set_name} {mode}: venv + pip")
                bench_pip(bench, set_name, mode)
            log(f"{set_name}: built venv")
            bench_built(bench, set_name, base)
        for set_name in set_names if "concurrency" in parts else ():
            log(f"{set_name}: 16 threads")
            bench_threads(bench, set_name)
            log(f"{set_name}: 8 processes")
            bench_processes(bench, set_name)
        if "metadata" in parts:
            log("status")
            bench_status(bench, *bases[set_names[-1]])
            log(f"{SYNTHETIC_ENVS} synthetic envs")
            synthetic = bench_metadata(bench)
            log(f"/proc scan with {PROCESSES} processes")
            bench_liveness(bench, synthetic)
        if "bytecode" in parts and not args.quick:
            log("bytecode")
            bench_bytecode(bench)
        markdown = report(bench, set_names, modes)
    finally:
        remove_tree(tmp)
    print(markdown)
    if args.out:
        args.out.write_text(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
