"""uv-envs on a Ray cluster: one lock, installed as it is on every node (extra ``[ray]``).

Three routes (docs/ray.md):

* :func:`provision` a :class:`LockedSpec` on every alive node with plain Ray
  tasks and use the runtime env it returns;
* the runtime-env plugin :class:`UvEnvsPlugin`, loaded on every node with
  ``RAY_RUNTIME_ENV_PLUGINS`` (:func:`plugin_config`), so that
  ``runtime_env={"uv_envs": spec.field()}`` builds the env lazily on whichever
  node a task lands;
* :class:`RayEnvironmentProvider`, WTB's provider port on top of provisioning.

And the service route: :func:`ClusterEnvManager` (what ``uv-envs-server
--ray-address`` runs on) installs every env it hands out on every node under
the same path, and :class:`ServedEnvPlugin` builds one on a node that lacks it
when a worker is about to start from it (WTB's ``py_executable`` route).
"""

from ._cluster import ClusterEnv, check_plugin, plugin_runtime_env, provision, release
from ._install import NodeEnv, ensure_here
from ._plugin import PLUGIN_CLASS, ServedEnvPlugin, UvEnvsPlugin, plugin_config
from ._provider import RayEnvironmentProvider
from ._replica import SERVED_PLUGIN_CLASS, ReplicaState
from ._served import ClusterEnvManager
from ._spec import FIELD, LockedSpec
from ._tasks import alive_nodes
from ._views import ClusterNode, NodePresence

__all__ = [
    "FIELD",
    "PLUGIN_CLASS",
    "SERVED_PLUGIN_CLASS",
    "ClusterEnv",
    "ClusterEnvManager",
    "ClusterNode",
    "LockedSpec",
    "NodeEnv",
    "NodePresence",
    "RayEnvironmentProvider",
    "ReplicaState",
    "ServedEnvPlugin",
    "UvEnvsPlugin",
    "alive_nodes",
    "check_plugin",
    "ensure_here",
    "plugin_config",
    "plugin_runtime_env",
    "provision",
    "release",
]
