"""Which nodes of a served Ray cluster hold an env: what both servers add to their answers.

A server started with ``--ray-address`` runs on the manager :func:`uv_envs.ray.ClusterEnvManager`
wires, whose ``cluster`` (a :class:`uv_envs.ClusterView`) answers these; any other
manager serves one host (``cluster`` is None), and these helpers answer ``None``.
"""

from __future__ import annotations

from typing import Any

import uv_envs


def node_presence(manager: uv_envs.EnvManager, key: uv_envs.EnvKey) -> list[dict[str, Any]] | None:
    """Per node: ``node_id``, ``address``, ``state`` (present/missing/failed), ``error``."""
    cluster = manager.cluster
    return None if cluster is None else [node.to_dict() for node in cluster.nodes(key)]


def cluster_nodes(manager: uv_envs.EnvManager) -> list[dict[str, Any]] | None:
    """Per alive node: ``node_id``, ``address``, ``problem`` (None when it is served)."""
    cluster = manager.cluster
    return None if cluster is None else [node.to_dict() for node in cluster.cluster_nodes()]


def relay_counts(manager: uv_envs.EnvManager) -> dict[str, Any] | None:
    """The wheel relay's ``fetched_files``, ``fetched_bytes``, ``served_*``, ``refused``."""
    counts = None if manager.cluster is None else manager.cluster.relay_counts()
    return None if counts is None else counts.to_dict()
