"""The Ray task plumbing of every route: the alive nodes, one pinned task per node, bounded gets.

Each task is pinned to its node with ``NodeAffinitySchedulingStrategy(soft=False)``,
asks for no CPU (an install must not wait behind the cluster's work) and is
never retried by Ray (the callers decide what a failure means).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import ray
from ray.core.generated.gcs_pb2 import GcsNodeInfo  # type: ignore[attr-defined]
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from uv_envs._errors import RayNotAvailable

#: Seconds the GCS may take to list the nodes.
NODES_TIMEOUT = 30.0


def alive() -> dict[str, str]:
    """Node id -> address of the cluster's alive nodes (``ray.init`` must have run).

    Asked with a timeout, not through ``ray.nodes()``: that waits without bound
    while the head is away, and when a new cluster answers there, Ray's check of
    its answer aborts the whole process (Ray 2.60, ``global_state_accessor.cc``).
    Raises what Ray raises after :data:`NODES_TIMEOUT` seconds (``RpcError``).
    """
    import ray._private.worker  # noqa: PLC0415 - the driver's own GCS client

    client = ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]  # noqa: SLF001
    nodes: dict[Any, Any] = client.get_all_node_info(timeout=NODES_TIMEOUT)
    return {
        node_id.hex(): str(info.node_manager_address)
        for node_id, info in nodes.items()
        if info.state == GcsNodeInfo.ALIVE
    }


def alive_nodes() -> list[str]:
    """The ids of the cluster's alive nodes, sorted (``ray.init`` must have run)."""
    return sorted(alive())


def _submit(
    func: Callable[..., Any], nodes: Iterable[str], args: tuple[Any, ...]
) -> dict[str, Any]:
    """Start ``func(*args)`` once on each node; node id -> its object ref."""
    remote = ray.remote(num_cpus=0, max_retries=0)(func)
    return {
        node: remote.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)
        ).remote(*args)
        for node in nodes
    }


def on_nodes(
    func: Callable[..., Any], nodes: Iterable[str], args: tuple[Any, ...], timeout: float
) -> dict[str, Any]:
    """Run ``func(*args)`` on each node; node id -> its answer, or the exception it raised.

    Each answer is awaited at most ``timeout`` seconds; a task not done by then
    is cancelled, and its exception is that node's answer.
    """
    answers: dict[str, Any] = {}
    for node, ref in _submit(func, nodes, args).items():
        try:
            answers[node] = ray.get(ref, timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - a node's failure is its answer
            ray.cancel(ref, force=True)
            answers[node] = exc
    return answers


def on_every_node(
    func: Callable[..., Any], nodes: Iterable[str] | None, args: tuple[Any, ...], timeout: float
) -> list[Any]:
    """Run ``func(*args)`` on each node (every alive one if None); the answers, in node order.

    Raises the first failure (as Ray raises it: a ``RayTaskError`` subclass of
    the task's error), or ``GetTimeoutError`` after ``timeout`` seconds for all.
    """
    node_ids = list(nodes) if nodes is not None else alive_nodes()
    if not node_ids:
        raise RayNotAvailable("the Ray cluster has no alive node")
    return list(ray.get(list(_submit(func, node_ids, args).values()), timeout=timeout))
