"""Getting one locked env onto every alive node of a Ray cluster, with plain Ray tasks.

One pinned task per node (:mod:`uv_envs.ray._tasks`) runs
:func:`uv_envs.ray._install.ensure_here` there. The runtime env returned
works on every node provisioned: a literal path when all nodes share one root
path, else ``${UV_ENVS_ROOT}``, which the worker's shell expands on each node.
Nodes that join later do not have the env; use the plugin for those
(docs/ray.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import ray

from uv_envs._errors import InvalidInput, RayNotAvailable

from ._install import NodeEnv, ensure_here, release_here
from ._plugin import PLUGIN_CLASS, plugin_config
from ._spec import FIELD, LockedSpec
from ._tasks import alive_nodes, on_every_node

#: Seconds to wait for one node's provisioning by default.
DEFAULT_TIMEOUT = 1800.0


@attrs.frozen
class ClusterEnv:
    """One locked spec provisioned on a set of nodes."""

    spec: LockedSpec
    nodes: tuple[NodeEnv, ...]
    runtime_env: Mapping[str, Any]

    @property
    def locked(self) -> dict[str, str]:
        """The locked versions (the same on every node)."""
        return self.spec.locked


def _provision_task(spec: LockedSpec, root: str | None) -> dict[str, Any]:
    node_env = ensure_here(spec, root=root, node_id=ray.get_runtime_context().get_node_id())
    return attrs.asdict(node_env)


def _release_task(spec: LockedSpec, root: str | None) -> int:
    return release_here(spec, root=root)


def provision(
    spec: LockedSpec,
    *,
    nodes: Iterable[str] | None = None,
    root: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> ClusterEnv:
    """Install ``spec`` on every alive node (or ``nodes``); return a runtime env for any of them.

    Each node builds under ``root`` (the same path on every node), or under
    its own ``$UV_ENVS_ROOT`` when ``root`` is None. Raises what the node
    raised (``UvError`` with uv's message, ``RayImportFailed`` ...), as
    ``ray.exceptions.RayTaskError`` subclasses of those.
    """
    if not ray.is_initialized():
        raise RayNotAvailable("call ray.init() before uv_envs.ray.provision")
    results = on_every_node(_provision_task, nodes, (spec, root), timeout)
    node_envs = tuple(NodeEnv(**r) for r in results)
    return ClusterEnv(spec=spec, nodes=node_envs, runtime_env=_runtime_env(node_envs))


def _runtime_env(node_envs: tuple[NodeEnv, ...]) -> dict[str, Any]:
    paths = {n.python_path for n in node_envs}
    if len(paths) == 1:
        python = paths.pop()
        return {
            "py_executable": python,
            "env_vars": {"VIRTUAL_ENV": str(Path(python).parent.parent)},
        }
    if all(n.root_from_env for n in node_envs):
        # Each node has its own root: let each worker's shell expand $UV_ENVS_ROOT.
        first = node_envs[0]
        relative = "/" + str(Path(first.python_path).relative_to(first.root))
        venv = str(Path(relative).parent.parent)
        return {
            "py_executable": f'"${{UV_ENVS_ROOT}}"{relative}',
            "env_vars": {"VIRTUAL_ENV": f"${{UV_ENVS_ROOT}}{venv}"},
        }
    raise InvalidInput(
        "the nodes built the env under different roots; give every node the same root "
        "(root=...) or set UV_ENVS_ROOT on every node"
    )


def release(
    cluster_env: ClusterEnv,
    *,
    root: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> int:
    """Delete the env on the nodes it was provisioned on (leased ones stay); bytes freed."""
    nodes = [n.node_id for n in cluster_env.nodes]
    return sum(on_every_node(_release_task, nodes, (cluster_env.spec, root), timeout))


_checked_nodes: set[str] = set()


def _plugin_loaded() -> bool:
    return PLUGIN_CLASS in os.environ.get("RAY_RUNTIME_ENV_PLUGINS", "")


def check_plugin(*, nodes: Iterable[str] | None = None, timeout: float = 60.0) -> None:
    """Raise :class:`~uv_envs.RayNotAvailable` naming the alive nodes that lack the plugin.

    A node without it would silently ignore the ``uv_envs`` field and run the
    task on its default Python. Nodes already found good are not asked again.
    """
    node_ids = list(list(nodes) if nodes is not None else alive_nodes())
    unchecked = [n for n in node_ids if n not in _checked_nodes]
    if not unchecked:
        return
    answers = on_every_node(_plugin_loaded, unchecked, (), timeout)
    missing = [n for n, loaded in zip(unchecked, answers, strict=True) if not loaded]
    _checked_nodes.update(n for n, loaded in zip(unchecked, answers, strict=True) if loaded)
    if missing:
        raise RayNotAvailable(
            f"the uv_envs runtime-env plugin is not loaded on node(s) {', '.join(missing)}: "
            f"start them with RAY_RUNTIME_ENV_PLUGINS='{plugin_config()}' (docs/ray.md)"
        )


def plugin_runtime_env(spec: LockedSpec, *, check: bool = True) -> dict[str, Any]:
    """``{"uv_envs": ...}``: built lazily on whichever node a task lands (needs the plugin).

    With ``check``, first makes sure every alive node has the plugin
    (:func:`check_plugin`), so no task quietly runs on the default Python.
    """
    if check:
        check_plugin()
    return {FIELD: spec.field()}
