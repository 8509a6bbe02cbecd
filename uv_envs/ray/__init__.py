"""uv-envs on a Ray cluster: one lock, installed as it is on every node (extra ``[ray]``).

Three routes (docs/ray.md):

* :func:`provision` a :class:`LockedSpec` on every alive node with plain Ray
  tasks and use the runtime env it returns;
* the runtime-env plugin :class:`UvEnvsPlugin`, loaded on every node with
  ``RAY_RUNTIME_ENV_PLUGINS`` (:func:`plugin_config`), so that
  ``runtime_env={"uv_envs": spec.field()}`` builds the env lazily on whichever
  node a task lands;
* :class:`RayEnvironmentProvider`, WTB's provider port on top of provisioning.
"""

from ._cluster import (
    ClusterEnv,
    alive_nodes,
    check_plugin,
    plugin_runtime_env,
    provision,
    release,
)
from ._node import NodeEnv, ensure_here
from ._plugin import PLUGIN_CLASS, UvEnvsPlugin, plugin_config
from ._provider import RayEnvironmentProvider
from ._spec import FIELD, LockedSpec

__all__ = [
    "FIELD",
    "PLUGIN_CLASS",
    "ClusterEnv",
    "LockedSpec",
    "NodeEnv",
    "RayEnvironmentProvider",
    "UvEnvsPlugin",
    "alive_nodes",
    "check_plugin",
    "ensure_here",
    "plugin_config",
    "plugin_runtime_env",
    "provision",
    "release",
]
