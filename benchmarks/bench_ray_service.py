"""WTB's flow on a cluster of separate file systems: ``CreateEnv`` to an actor on every node.

    sudo python benchmarks/bench_ray_service.py [--reps N] [--sets medium,example] [--out FILE]

Starts a Ray cluster whose two worker nodes each run in a mount namespace of
their own (``tests/support/ray_namespaces.py``: the served root is another folder on
each, as on separate machines; root needed) and a real ``uv-envs-server
--ray-address`` on it. Then, side by side in one run, for each package set and
a spec no route has seen (``requests!=0.0.<i>`` appended), warm caches (each
route ran the set once, untimed, before the clock starts):

* *uv-envs (served)*: gRPC ``CreateEnv`` as WTB sends it, then one actor
  pinned to each of the three nodes with WTB's runtime env
  (``py_executable = env_path + "/.venv/bin/python"``, ``VIRTUAL_ENV``); the
  clock stops when all three answered;
* *Ray ``uv`` field*: the same three actors with ``runtime_env={"uv": [...]}``.

Sets: ``medium`` (benchmarks/package_sets.py) and ``example`` (the design's
``langchain`` + ``chromadb``, Python 3.11). Needs the public index and
``pip install -e '.[ray,server]'``. Everything goes under one temporary
directory, removed at the end. Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
from package_sets import SETS  # noqa: E402 - beside this script
from parts import ray_nodes, wtb  # noqa: E402
from parts.ray_nodes import node_env  # noqa: E402

from tests.support.ray_namespaces import NamespacedCluster, can_isolate  # noqa: E402
from tests.support.ray_start import START_TIMEOUT, started_cluster  # noqa: E402
from uv_envs_server._generated.env_manager_pb2_grpc import EnvManagerServiceStub  # noqa: E402

TIMEOUT = 1800
ALL_SETS = {**SETS, "example": ("langchain", "chromadb")}


def served_route(
    client: EnvManagerServiceStub, name: str, packages: list[str], nodes: list[str]
) -> float:
    started = time.perf_counter()
    env_path = wtb.create_env(client, "bench", name, packages, python="3.11", timeout=TIMEOUT)
    seen = ray_nodes.on_every_node(
        {
            "py_executable": env_path + "/.venv/bin/python",
            "env_vars": {"VIRTUAL_ENV": env_path + "/.venv"},
        },
        nodes,
        TIMEOUT,
    )
    elapsed = time.perf_counter() - started
    assert all(s == seen[0] for s in seen), "the nodes hold different versions"
    return elapsed


def ray_uv_route(packages: list[str], nodes: list[str]) -> float:
    started = time.perf_counter()
    ray_nodes.on_every_node({"uv": packages}, nodes, TIMEOUT)
    return time.perf_counter() - started


def start_server(cluster: NamespacedCluster) -> tuple[subprocess.Popen[str], str]:
    argv = [
        sys.executable, "-m", "uv_envs_server", "--port", "0",
        "--root", str(cluster.private / "root"), "--ray-address", cluster.address,
    ]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=cluster.env)
    assert server.stdout is not None
    with futures.ThreadPoolExecutor(1) as reader:
        line = reader.submit(server.stdout.readline).result(timeout=600)
    return server, line.rsplit(" ", 1)[1].strip()


def start_cluster(base: Path, stack: contextlib.ExitStack[Any]) -> NamespacedCluster:
    """Head here, two workers in their own mount namespaces, the plugins loaded everywhere."""
    (base / "served").mkdir()
    env = node_env(base)
    for name in ("UV_ENVS_ROOT", "UV_ENVS_CACHE_DIR", "UV_CACHE_DIR"):
        env.pop(name, None)  # each node's caches on its own disk
    cluster = NamespacedCluster(base=base, private=base / "served", env=env)
    stack.enter_context(cluster.session())
    cluster.add_worker("n1")
    cluster.add_worker("n2")
    ray.init(address=cluster.address, log_to_driver=False)
    deadline = time.monotonic() + START_TIMEOUT
    while len(ray_nodes.alive_nodes()) < 3 and time.monotonic() < deadline:
        time.sleep(0.5)
    return cluster


def measure(target: str, set_names: list[str], reps: int) -> list[str]:
    """One markdown row per set: medians of both routes, side by side."""
    nodes = ray_nodes.alive_nodes()
    rows = []
    with wtb.stub(target) as client:
        for set_name in set_names:
            packages = list(ALL_SETS[set_name])
            warm = [*packages, "requests!=0.0.999"]
            served_route(client, f"{set_name}-warm", warm, nodes)
            ray_uv_route(warm, nodes)
            ours, theirs = [], []
            for rep in range(reps):
                spec = [*packages, f"requests!=0.0.{rep + 1}"]
                ours.append(served_route(client, f"{set_name}-{rep}", spec, nodes))
                theirs.append(ray_uv_route(spec, nodes))
            a, b = statistics.median(ours), statistics.median(theirs)
            rows.append(f"| {set_name} | {a:.2f} s | {b:.2f} s | {b / a:.1f}x |")
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--sets", default="medium,example")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    reason = can_isolate()
    if reason is not None:
        sys.exit(f"cannot run: {reason}")
    with started_cluster("rb", start_cluster) as cluster:
        server, target = start_server(cluster)
        try:
            rows = measure(target, args.sets.split(","), args.reps)
        finally:
            server.terminate()
            server.wait(timeout=120)
    report = "\n".join(
        [
            (
                f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
                f"{platform.python_version()}, Ray {ray.__version__}; 3 nodes, 2 in their own "
                f"mount namespace; warm caches; median of {args.reps}"
            ),
            "",
            "| set | uv-envs served (CreateEnv + actor on every node) | Ray `uv` field | ratio |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    print(report)
    if args.out:
        args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
