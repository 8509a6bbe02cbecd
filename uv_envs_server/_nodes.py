"""Which nodes of a served Ray cluster hold an env: what both servers add to their answers.

A server started with ``--ray-address`` runs on a :class:`uv_envs.ray.ClusterEnvManager`;
any other manager serves one host, and these helpers answer ``None`` for it.
Typed by shape, not by class, so this module imports neither Ray nor uv_envs.ray.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import uv_envs


class _Reported(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


@runtime_checkable
class ServesCluster(Protocol):
    """What a cluster-serving manager offers besides :class:`uv_envs.EnvManager`."""

    def nodes(self, key: uv_envs.EnvKey) -> Sequence[_Reported]:
        """Each alive node's state for the env of ``key``."""
        ...

    def cluster_nodes(self) -> Sequence[_Reported]:
        """Each alive node, with why it cannot be served where it cannot."""
        ...

    def relay_counts(self) -> _Reported | None:
        """What the wheel relay fetched and served (None when it runs none)."""
        ...


def node_presence(manager: uv_envs.EnvManager, key: uv_envs.EnvKey) -> list[dict[str, Any]] | None:
    """Per node: ``node_id``, ``address``, ``state`` (present/missing/failed), ``error``."""
    if not isinstance(manager, ServesCluster):
        return None
    return [node.to_dict() for node in manager.nodes(key)]


def cluster_nodes(manager: uv_envs.EnvManager) -> list[dict[str, Any]] | None:
    """Per alive node: ``node_id``, ``address``, ``problem`` (None when it is served)."""
    if not isinstance(manager, ServesCluster):
        return None
    return [node.to_dict() for node in manager.cluster_nodes()]


def relay_counts(manager: uv_envs.EnvManager) -> dict[str, Any] | None:
    """The wheel relay's ``fetched_files``, ``fetched_bytes``, ``served_*``, ``refused``."""
    if not isinstance(manager, ServesCluster):
        return None
    counts = manager.relay_counts()
    return None if counts is None else counts.to_dict()
