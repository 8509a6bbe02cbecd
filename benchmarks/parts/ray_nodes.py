"""What the cluster benchmarks share: the nodes' environment, the alive nodes, a probe per node."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import ray
import ray.cloudpickle
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tests.support.ray_namespaces import ray_env
from uv_envs.ray import plugin_config

ROOT = Path(__file__).resolve().parents[2]
# The nodes cannot import this folder: the probe travels by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]


@ray.remote(num_cpus=0)
class Probe:
    def versions(self) -> dict[str, str]:
        import importlib.metadata  # noqa: PLC0415 - runs in the env

        return {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()}


def on_every_node(
    runtime_env: dict[str, Any], nodes: list[str], timeout: float
) -> list[dict[str, str]]:
    """One actor per node in ``runtime_env``, started at once; the versions each sees."""
    actors = [
        Probe.options(  # type: ignore[attr-defined]
            runtime_env=runtime_env,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False),
        ).remote()
        for node in nodes
    ]
    try:
        return list(ray.get([a.versions.remote() for a in actors], timeout=timeout))
    finally:
        for actor in actors:
            ray.kill(actor)


def alive_nodes() -> list[str]:
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return sorted(str(n["NodeID"]) for n in nodes if n["Alive"])


def node_env(base: Path) -> dict[str, str]:
    """Every node's environment: both plugins, this checkout, and the uv Ray's uv field runs."""
    bin_dir = str(Path(sys.executable).parent)  # Ray's uv field runs the uv found on PATH
    return ray_env(
        base,
        {
            "RAY_RUNTIME_ENV_PLUGINS": plugin_config(),
            "PYTHONPATH": str(ROOT),
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        },
    )
