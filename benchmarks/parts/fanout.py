"""The cluster, the server and the counters of ``bench_fanout.py``.

Four nodes (head + three workers in mount namespaces of their own,
``tests/support/ray_namespaces.py``), each with its own served root, uv cache and Ray
session folder, as separate machines. Every node and the server get the
counting index as their only index (``UV_ENVS_INDEX_URL``); nothing reads
``PIP_FIND_LINKS`` or a shared cache.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from concurrent import futures
from pathlib import Path
from typing import Any

import attrs
import ray

from tests.support.ray_namespaces import NamespacedCluster
from uv_envs import EnvKey, EnvManager, IndexSettings, Settings
from uv_envs.testing import CountingIndex

from . import ray_nodes
from .ray_nodes import node_env

WORKERS = ("n1", "n2", "n3")
#: Variables that would let a node install from somewhere other than the counting index.
FOREIGN = (
    "UV_ENVS_ROOT",
    "UV_ENVS_CACHE_DIR",
    "UV_CACHE_DIR",
    "UV_INDEX_URL",
    "UV_EXTRA_INDEX_URL",
    "UV_FIND_LINKS",
    "PIP_FIND_LINKS",
    "PIP_INDEX_URL",
    "PIP_EXTRA_INDEX_URL",
    "UV_ENVS_FIND_LINKS",
    "UV_ENVS_EXTRA_INDEX_URL",
)


@attrs.frozen
class Count:
    """What the index served during one step, and where installs happened."""

    bytes: int
    files: int
    requests: int
    #: The most requests any one file got: 1 when each file was fetched once.
    most: int
    #: The files served, for the raw figures (which packages a route fetched).
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, index: CountingIndex) -> Count:
        served = index.served()
        return cls(
            bytes=sum(s.bytes for s in served.values()),
            files=len(served),
            requests=sum(s.requests for s in served.values()),
            most=max((s.requests for s in served.values()), default=0),
            names=tuple(sorted(served)),
        )


@attrs.frozen
class OneNode:
    """One root alone, empty cache: what one node needs, and its warm floor."""

    count: Count
    cold: float
    #: A new spec of the same set with the cache warm: lock + ``uv sync`` from the cache.
    warm: float


def one_node(index: CountingIndex, root: Path, packages: list[str]) -> OneNode:
    settings = Settings(root=root, index=IndexSettings(index_url=index.url))
    manager = EnvManager(settings)
    try:
        index.reset()
        started = time.perf_counter()
        manager.create(EnvKey("bench", "one-node"), packages=packages, python="3.11")
        cold = time.perf_counter() - started
        count = Count.of(index)
        index.reset()
        started = time.perf_counter()
        warm_spec = [*packages, "requests!=0.0.999"]
        manager.create(EnvKey("bench", "one-node-warm"), packages=warm_spec, python="3.11")
        warm = time.perf_counter() - started
    finally:
        manager.close()
    return OneNode(count, cold, warm)


def roots_at_once(index: CountingIndex, base: Path, packages: list[str]) -> tuple[float, Count]:
    """Four roots, each with an empty cache, creating the set at the same time (no relay).

    The floor of four cold nodes' installs on this machine's cores, and what four
    nodes cost the index without the relay.
    """

    def create(number: int) -> None:
        settings = Settings(root=base / f"r{number}", index=IndexSettings(index_url=index.url))
        manager = EnvManager(settings)
        try:
            manager.create(EnvKey("bench", "at-once"), packages=packages, python="3.11")
        finally:
            manager.close()

    index.reset()
    started = time.perf_counter()
    with futures.ThreadPoolExecutor(1 + len(WORKERS)) as pool:
        list(pool.map(create, range(1 + len(WORKERS))))
    return time.perf_counter() - started, Count.of(index)


def start_cluster(
    index_url: str, base: Path, stack: contextlib.ExitStack[Any]
) -> NamespacedCluster:
    """Head here, three workers in their own mount namespaces, the plugins loaded everywhere.

    The counting index is the nodes' only index; ``stack`` stops the cluster.
    """
    (base / "served").mkdir(parents=True)
    env = node_env(base)
    for name in FOREIGN:
        env.pop(name, None)
    env["UV_ENVS_INDEX_URL"] = index_url
    cluster = NamespacedCluster(base=base, private=base / "served", env=env)
    stack.enter_context(cluster.session())
    for name in WORKERS:
        cluster.add_worker(name)
    ray.init(address=cluster.address, log_to_driver=False)
    deadline = time.monotonic() + 180
    while len(ray_nodes.alive_nodes()) < 1 + len(WORKERS) and time.monotonic() < deadline:
        time.sleep(0.5)
    if len(ray_nodes.alive_nodes()) < 1 + len(WORKERS):
        msg = f"only {len(ray_nodes.alive_nodes())} nodes joined"
        raise RuntimeError(msg)
    return cluster


def server_root(cluster: NamespacedCluster) -> Path:
    """The server's root, which is the head node's copy too (same namespace)."""
    return cluster.private / "root"


def node_roots(cluster: NamespacedCluster) -> list[Path]:
    """Every node's served root as this host sees it: the head's, then each worker's folder."""
    return [server_root(cluster), *(cluster.base / "nodes" / n / "root" for n in WORKERS)]


def start_server(cluster: NamespacedCluster) -> tuple[subprocess.Popen[str], str]:
    argv = [
        sys.executable, "-m", "uv_envs_server", "--port", "0",
        "--root", str(server_root(cluster)), "--ray-address", cluster.address,
    ]  # fmt: skip
    server = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=cluster.env)
    assert server.stdout is not None
    with futures.ThreadPoolExecutor(1) as reader:
        line = reader.submit(server.stdout.readline).result(timeout=600)
    return server, line.rsplit(" ", 1)[1].strip()


def store_entries(roots: list[Path]) -> list[int]:
    """Built venvs per node: a ``uv sync`` makes one; linking an existing one does not."""
    return [
        sum(1 for p in (r / "store").iterdir() if p.is_dir()) if (r / "store").is_dir() else 0
        for r in roots
    ]


def relay_kept(cluster: NamespacedCluster) -> tuple[int, int]:
    """Files and bytes the server's wheel relay fetched from the index (kept by hash)."""
    kept = [p for p in (server_root(cluster) / "relay").glob("??/*") if p.is_file()]
    return len(kept), sum(p.stat().st_size for p in kept)


def ray_uv_env(packages: list[str], index_url: str) -> dict[str, Any]:
    """Ray's ``uv`` field on the counting index; ``--no-cache`` is Ray's own default."""
    options = ["--no-cache", "--index-url", index_url]
    return {"uv": {"packages": packages, "uv_pip_install_options": options}}


def ray_pip_env(packages: list[str], index_url: str) -> dict[str, Any]:
    """Ray's ``pip`` field on the counting index, with Ray's default options kept."""
    options = ["--disable-pip-version-check", "--no-cache-dir", "--index-url", index_url]
    return {"pip": {"packages": packages, "pip_install_options": options}}
