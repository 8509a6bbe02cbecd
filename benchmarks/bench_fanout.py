"""Issue 21: what the index serves, and how long until every node runs, on a 4-node cluster.

    sudo python benchmarks/bench_fanout.py [--sets medium,example] [--reps N] [--no-pip]
        [--wheelhouse DIR] [--out FILE]

For each set, a fresh cluster (``parts/fanout.py``: head + three workers in
mount namespaces of their own, so each node has its own served root, uv cache
and Ray session folder, as separate machines; root needed), a real
``uv-envs-server --ray-address`` on it, and a ``uv_envs.testing.CountingIndex``
on loopback over the set's wheelhouse (``parts/wheelhouse.py``: downloaded
once from PyPI into ``--wheelhouse``/<set>, default ``benchmarks/.wheelhouse``)
as the only index of the server, every node and Ray's fields. Side by side in
one run:

* *one node alone*: one uv-envs root, empty cache, creates the set: the bytes
  one node needs (the target's unit); then a new spec of the set with the cache
  warm (the floor of a warm install: lock + ``uv sync`` from the cache);
* *four roots alone at once*, empty caches, no relay: the floor of four cold
  installs on this machine's cores, and what four nodes cost the index without
  the relay;
* *Ray's worker start*: an actor on every node in a new runtime env whose
  interpreter exists (the floor of every route);
* *cold*, empty caches everywhere: uv-envs (gRPC ``CreateEnv`` as WTB sends
  it, then an actor pinned to each node with WTB's runtime env) against the
  same actors with Ray's ``uv`` field and ``pip`` field; the index's bytes and
  the time until every node answered;
* *other order*: the set reversed, under a new env name: time, the index's
  file requests, the relay's fetches and the venvs built on each node;
* *warm*: a spec no route has seen (``requests!=0.0.<i>`` appended), ``--reps`` times.

Everything but the wheelhouse goes under one temporary directory (in
``$TMPDIR``), removed at the end; every Ray process started is killed.
Prints markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
from package_sets import SETS  # noqa: E402 - beside this script
from parts import fanout, ray_nodes, wheelhouse, wtb  # noqa: E402
from parts.fanout import Count  # noqa: E402

from tests.support.ray_namespaces import can_isolate  # noqa: E402
from tests.support.ray_start import started_cluster  # noqa: E402
from uv_envs.testing import CountingIndex  # noqa: E402
from uv_envs_server._generated.env_manager_pb2_grpc import EnvManagerServiceStub  # noqa: E402

TIMEOUT = 1800
ALL_SETS = {**SETS, "example": ("langchain", "chromadb")}
Result = dict[str, Any]


def on_every_node(runtime_env: dict[str, Any], nodes: list[str]) -> float:
    """Seconds until one actor per node, all started at once, answered."""
    started = time.perf_counter()
    seen = ray_nodes.on_every_node(runtime_env, nodes, TIMEOUT)
    elapsed = time.perf_counter() - started
    assert all(s == seen[0] for s in seen), "the nodes hold different versions"
    return elapsed


def served(
    client: EnvManagerServiceStub, name: str, packages: list[str], nodes: list[str], creates: Result
) -> float:
    """WTB's flow: ``CreateEnv``, then an actor on every node with the env's interpreter.

    ``creates[name]`` gets the ``CreateEnv`` part alone (resolution, fan-out, installs).
    """
    started = time.perf_counter()
    env_path = wtb.create_env(client, "bench", name, packages, python="3.11", timeout=TIMEOUT)
    creates[name] = time.perf_counter() - started
    runtime_env = {
        "py_executable": env_path + "/.venv/bin/python",
        "env_vars": {"VIRTUAL_ENV": env_path + "/.venv"},
    }
    on_every_node(runtime_env, nodes)
    return time.perf_counter() - started


def counted(index: CountingIndex, step: Callable[[], float]) -> tuple[float, Count]:
    index.reset()
    elapsed = step()
    return elapsed, Count.of(index)


def worker_start(nodes: list[str], tag: str) -> float:
    """Ray starting a worker for a runtime env it has not seen, whose interpreter exists."""
    runtime_env = {"py_executable": sys.executable, "env_vars": {"BENCH_FLOOR": tag}}
    return on_every_node(runtime_env, nodes)


def measure_set(name: str, house: Path, work: Path, reps: int, *, pip: bool) -> Result:
    packages = list(ALL_SETS[name])
    result: Result = {"set": name}
    with CountingIndex(house) as index:
        url = index.url
        result["one_node"] = fanout.one_node(index, work / "one-node", packages)
        result["at_once"] = fanout.roots_at_once(index, work / "at-once", packages)
        start = functools.partial(fanout.start_cluster, url)
        with started_cluster("fc", start) as cluster:
            server, target = fanout.start_server(cluster)
            try:
                nodes = ray_nodes.alive_nodes()
                roots = fanout.node_roots(cluster)
                result["nodes"] = len(nodes)
                creates = result["creates"] = {}
                result["floor"] = [worker_start(nodes, "first")]
                with wtb.stub(target) as client:
                    result["cold"] = counted(
                        index, lambda: served(client, "cold", packages, nodes, creates)
                    )
                    result["relay_cold"] = fanout.relay_kept(cluster)
                    result["stores_cold"] = fanout.store_entries(roots)
                    result["uv_cold"] = counted(
                        index, lambda: on_every_node(fanout.ray_uv_env(packages, url), nodes)
                    )
                    if pip:
                        result["pip_cold"] = counted(
                            index, lambda: on_every_node(fanout.ray_pip_env(packages, url), nodes)
                        )
                    other = packages[::-1]
                    result["order"] = counted(
                        index, lambda: served(client, "order", other, nodes, creates)
                    )
                    result["relay_order"] = fanout.relay_kept(cluster)
                    result["stores_order"] = fanout.store_entries(roots)
                    result["uv_order"] = counted(
                        index, lambda: on_every_node(fanout.ray_uv_env(other, url), nodes)
                    )
                    result["floor"].append(worker_start(nodes, "second"))
                    result["warm"], result["uv_warm"] = [], []
                    for rep in range(reps):
                        spec = [*packages, f"requests!=0.0.{rep + 1}"]
                        ours = functools.partial(
                            served, client, f"warm-{rep}", spec, nodes, creates
                        )
                        theirs = functools.partial(
                            on_every_node, fanout.ray_uv_env(spec, url), nodes
                        )
                        result["warm"].append(counted(index, ours))
                        result["uv_warm"].append(counted(index, theirs))
                    result["relay_end"] = fanout.relay_kept(cluster)
            finally:
                server.terminate()
                server.wait(timeout=120)
    return result


def report(results: list[Result], reps: int) -> str:
    from parts.fanout_report import render  # noqa: PLC0415 - only once there is something

    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    header = (
        f"Run of {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC at commit {commit}: "
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"Ray {ray.__version__}; 4 nodes (3 in their own mount namespace); "
        f"warm figures are medians of {reps}"
    )
    return render(header, results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--sets", default="medium,example")
    parser.add_argument("--no-pip", action="store_true", help="leave Ray's pip field out")
    parser.add_argument("--wheelhouse", type=Path, default=ROOT / "benchmarks" / ".wheelhouse")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    reason = can_isolate()
    if reason is not None:
        sys.exit(f"cannot run: {reason}")
    names = args.sets.split(",")
    work = Path(tempfile.mkdtemp(prefix="fo"))  # short: Ray's socket paths live under it
    # uv leaves lock files in the temp folder of every process that runs it (server,
    # nodes, Ray's fields): all of them inherit this one, removed with the rest.
    (work / "tmp").mkdir()
    os.environ["TMPDIR"] = tempfile.tempdir = str(work / "tmp")
    results = []
    try:
        houses = {n: wheelhouse.ensure(args.wheelhouse / n, ALL_SETS[n]) for n in names}
        for name in names:
            base = work / name
            base.mkdir()
            results.append(measure_set(name, houses[name], base, args.reps, pip=not args.no_pip))
            print(results[-1], flush=True)  # raw figures first, should a later set fail
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(results, args.reps)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
