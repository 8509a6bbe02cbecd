"""Part ``concurrency``: 16 threads ensure one key; 8 processes ensure 8 keys of one spec."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from package_sets import SETS

from parts.common import Bench, counts_note, median, timed
from uv_envs import EnvKey, EnvManager

# Processes started by the benchmark import uv_envs from this checkout.
WORKER = """
import json, sys
from uv_envs import EnvKey, EnvManager, Settings
a = json.loads(sys.argv[1])
m = EnvManager(Settings(root=a["root"], cache_dir=a["cache"], uv_binary=a["uv"],
                        background_bytecode=False, ray="off"))
m.ensure(EnvKey("bench", a["node"]), packages=a["packages"])
"""


def bench_threads(bench: Bench, set_name: str) -> None:
    """16 threads ensure one key on a fresh root, against one ensure on another fresh root."""
    packages = SETS[set_name]
    ones, manys, seen = [], [], []
    for _ in range(bench.reps):
        manager = bench.warm_manager(bench.fresh("root"), bench.warm_uv_cache)
        seconds, _ = timed(lambda: manager.ensure(EnvKey("bench", "one"), packages=packages))  # noqa: B023
        ones.append(seconds)
        manager = bench.warm_manager(bench.fresh("root"), bench.warm_uv_cache)
        barrier = threading.Barrier(17)
        paths: list[str] = []

        def ensure(
            manager: EnvManager = manager,
            barrier: threading.Barrier = barrier,
            paths: list[str] = paths,
        ) -> None:
            barrier.wait()
            environment = manager.ensure(EnvKey("bench", "same"), packages=packages)
            paths.append(str(environment.python_path))

        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(ensure) for _ in range(16)]
            barrier.wait()
            started = time.perf_counter()
            for future in futures:
                future.result()
            manys.append(time.perf_counter() - started)
        assert len(set(paths)) == 1, paths
        seen.append(bench.counts(manager))
    bench.extra[f"threads_{set_name}"] = {
        "one": median(ones),
        "many": median(manys),
        "counts": counts_note(seen),
    }


def bench_processes(bench: Bench, set_name: str) -> None:
    """8 processes each ensure a distinct key with the same spec, on one fresh root."""
    packages = SETS[set_name]

    def launch(root: Path, nodes: Sequence[str]) -> float:
        started = time.perf_counter()
        processes = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    WORKER,
                    json.dumps(
                        {
                            "root": str(root),
                            "cache": str(bench.warm_uv_cache),
                            "uv": bench.uv,
                            "node": node,
                            "packages": list(packages),
                        }
                    ),
                ],
                env=bench.subprocess_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for node in nodes
        ]
        for process in processes:
            _, stderr = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"worker failed: {stderr.decode()}")
        return time.perf_counter() - started

    ones, manys, seen = [], [], []
    for _ in range(bench.reps):
        ones.append(launch(bench.fresh("root"), ["p0"]))
        root = bench.fresh("root")
        manys.append(launch(root, [f"p{i}" for i in range(8)]))
        records = bench.manager(root, bench.warm_uv_cache).operations(limit=100).items
        resolved = sum(1 for r in records if r.metadata.get("resolved") is True)
        installed = sum(1 for r in records if r.metadata.get("installed") is True)
        seen.append((resolved, installed))
    bench.extra[f"processes_{set_name}"] = {
        "one": median(ones),
        "many": median(manys),
        "counts": counts_note(seen),
    }
