"""``IEnvironmentProvider`` for WTB on a Ray cluster: one lock, installed on every node."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from uv_envs._errors import EnvironmentNotFound
from uv_envs._manager import EnvManager
from uv_envs._provider import LocalEnvironmentProvider, key_from_config

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
        """Create the variant's env and install its lock on every alive node; safe to retry.

        The paths returned are the nodes' env (``${UV_ENVS_ROOT}/...`` when
        each node has its own root); ``driver_env_path`` is where it was resolved.
        """
        created = self.local.create_environment(variant_id, config)
        key = key_from_config(config)
        self.local.manager.get(key).ray_runtime_env()  # refuses another Python minor first
        spec = LockedSpec.from_key(self.local.manager, key)
        cluster_env = provision(spec, root=self.root, timeout=self.timeout)
        with self._lock:
            self._clusters[variant_id] = cluster_env
        return {
            **created,
            **_paths(cluster_env),
            "driver_env_path": created["env_path"],
            "nodes": [n.node_id for n in cluster_env.nodes],
        }

    def get_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """The WTB dict; ``py_executable`` and ``env_vars`` work on every provisioned node."""
        with self._lock:
            cluster_env = self._clusters.get(variant_id)
        local = self.local.get_runtime_env(variant_id)
        if cluster_env is None or local is None:
            return None
        ray_env = self._ray_env(cluster_env)
        paths = _paths(cluster_env)
        return {
            **local,
            **paths,
            "pinned_python_path": paths["python_path"],
            **ray_env,
            "ray_runtime_env": ray_env,
        }

    def get_ray_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """The Ray ``runtime_env`` (``py_executable``, ``env_vars``) for any provisioned node."""
        with self._lock:
            cluster_env = self._clusters.get(variant_id)
        return None if cluster_env is None else self._ray_env(cluster_env)

    @staticmethod
    def _ray_env(cluster_env: ClusterEnv) -> dict[str, Any]:
        runtime = cluster_env.runtime_env
        return {"py_executable": runtime["py_executable"], "env_vars": dict(runtime["env_vars"])}

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


def _paths(cluster_env: ClusterEnv) -> dict[str, str]:
    """The node env's paths as the runtime env names them (quotes of ``${VAR}`` removed)."""
    venv = str(cluster_env.runtime_env["env_vars"]["VIRTUAL_ENV"])
    return {
        "env_path": str(Path(venv).parent),
        "venv_path": venv,
        "python_path": f"{venv}/bin/python",
    }
