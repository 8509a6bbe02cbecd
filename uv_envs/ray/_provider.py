"""``IEnvironmentProvider`` for WTB on a Ray cluster: one lock, installed on every node."""

from __future__ import annotations

import threading
from typing import Any

from .._errors import EnvironmentNotFound
from .._manager import EnvManager
from .._provider import LocalEnvironmentProvider, environment_dict
from ._cluster import ClusterEnv, provision, release
from ._spec import LockedSpec


class RayEnvironmentProvider:
    """:class:`uv_envs.IEnvironmentProvider` whose runtime env works on any node of the cluster.

    ``create_environment`` builds the variant's env here (resolving it once),
    then installs exactly its lock on every alive node
    (:func:`uv_envs.ray.provision`). ``get_runtime_env`` returns the WTB
    dict, where ``py_executable`` and ``env_vars`` name the node-local env;
    its ``ray_runtime_env`` item is the same as a Ray ``runtime_env``.

    Args:
        manager: the driver's manager (``EnvManager()`` by default).
        root: the nodes' root, the same path on each; by default each node's
            own ``$UV_ENVS_ROOT``.
        timeout: seconds to wait for the nodes.

    """

    def __init__(
        self, manager: EnvManager | None = None, *, root: str | None = None, timeout: float = 1800.0
    ) -> None:
        self.local = LocalEnvironmentProvider(manager)
        self.root = root
        self.timeout = timeout
        self._clusters: dict[str, ClusterEnv] = {}
        self._lock = threading.Lock()

    def create_environment(self, variant_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """Create the variant's env and install its lock on every alive node; safe to retry."""
        created = self.local.create_environment(variant_id, config)
        key = self.local._keys[variant_id]  # noqa: SLF001 - the provider we own
        environment = self.local.manager.get(key)
        environment.ray_runtime_env()  # refuses an env on another Python minor, before Ray
        spec = LockedSpec.from_key(self.local.manager, key)
        cluster_env = provision(spec, root=self.root, timeout=self.timeout)
        with self._lock:
            self._clusters[variant_id] = cluster_env
        return {**created, "nodes": [n.node_id for n in cluster_env.nodes]}

    def get_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """The WTB dict, with ``py_executable``/``env_vars`` valid on every provisioned node."""
        with self._lock:
            cluster_env = self._clusters.get(variant_id)
        local = self.local.get_runtime_env(variant_id)
        if cluster_env is None or local is None:
            return None
        ray_env = dict(cluster_env.runtime_env)
        return {**local, **ray_env, "ray_runtime_env": ray_env}

    def get_ray_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """The Ray ``runtime_env`` (``py_executable``, ``env_vars``) for any provisioned node."""
        with self._lock:
            cluster_env = self._clusters.get(variant_id)
        return None if cluster_env is None else dict(cluster_env.runtime_env)

    def cleanup_environment(self, variant_id: str, timeout: float | None = None) -> None:
        """Release the env on the nodes (leased ones stay) and delete the driver's env."""
        with self._lock:
            cluster_env = self._clusters.pop(variant_id, None)
        if cluster_env is not None:
            release(cluster_env, root=self.root, timeout=timeout or self.timeout)
        try:
            self.local.cleanup_environment(variant_id, timeout)
        except EnvironmentNotFound:
            return
