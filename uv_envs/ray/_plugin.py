"""The Ray runtime-env plugin: ``runtime_env={"uv_envs": spec.field()}`` on any node.

Load it on every node by starting Ray with
``RAY_RUNTIME_ENV_PLUGINS='[{"class": "uv_envs.ray.UvEnvsPlugin"}]'`` (see
:func:`plugin_config`); the class must be importable by each node's runtime-env
agent, i.e. uv-envs installed in the cluster's Python. The agent then builds the
env the first time a task with the field lands on the node (nodes that join
later included), under the node's ``$UV_ENVS_ROOT``, and points the worker's
``py_executable`` at it.

The URI is content-addressed (:meth:`LockedSpec.uri`), so identical specs
share one env per node whatever the package order. Ray calls ``delete_uri``
when its cache evicts an unused URI; the env is released through uv-envs'
own delete and cleanup, which leave a leased env alone.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ray._private.runtime_env.plugin import RuntimeEnvPlugin

from uv_envs._manager import EnvManager
from uv_envs._models import EnvKey

from ._attest import checked_executable, python_exists, quick_changes
from ._install import cluster_ray, ensure_on, environment_of, install_exact, node_manager, release
from ._published import PublishedEnv, agent_context, env_path_of
from ._relaunch import command
from ._replica import FAILURE_CACHE_VARIABLE, SERVED_PLUGIN_CLASS, failure_cache_seconds
from ._spec import FIELD, NODE_WORKFLOW, LockedSpec

if TYPE_CHECKING:
    from ray._private.runtime_env.context import RuntimeEnvContext
    from ray.runtime_env import RuntimeEnv

#: The value of ``RAY_RUNTIME_ENV_PLUGINS`` that loads the plugin.
PLUGIN_CLASS = "uv_envs.ray.UvEnvsPlugin"


def plugin_config() -> str:
    """The value to give ``RAY_RUNTIME_ENV_PLUGINS`` on every node: both plugins."""
    return json.dumps([{"class": PLUGIN_CLASS}, {"class": SERVED_PLUGIN_CLASS}])


def _spec_of(runtime_env: Mapping[str, Any]) -> LockedSpec | None:
    value = runtime_env.get(FIELD)
    return None if value is None else LockedSpec.from_field(value)


class UvEnvsPlugin(RuntimeEnvPlugin):
    """Builds ``runtime_env["uv_envs"]`` on the node and runs the worker in it."""

    name = FIELD
    # After Ray's own py_executable plugin (priority 10), so ours decides the interpreter.
    priority = 90

    @functools.cached_property
    def _manager(self) -> EnvManager:
        return node_manager()

    @staticmethod
    def validate(runtime_env_dict: dict[str, Any]) -> None:
        """Refuse a malformed field, and a ``py_executable`` that would fight this plugin."""
        spec = _spec_of(runtime_env_dict)
        if spec is not None and runtime_env_dict.get("py_executable"):
            msg = "runtime_env cannot set both 'uv_envs' and 'py_executable'"
            raise ValueError(msg)

    def get_uris(self, runtime_env: RuntimeEnv) -> list[str]:
        """The spec's URI; ``[]`` for a runtime env without the field (Ray asks for every one)."""
        spec = _spec_of(runtime_env)
        if spec is None:
            return []
        return [spec.uri(cluster_ray(self._manager).version)]

    async def create(
        self,
        uri: str | None,
        runtime_env: RuntimeEnv,
        context: RuntimeEnvContext,
        logger: logging.Logger,
    ) -> float:
        """Build the env on this node, off the agent's event loop; the bytes it uses."""
        del uri, context
        spec = _spec_of(runtime_env)
        if spec is None:
            return 0
        logger.info("uv_envs: installing the locked spec on this node")
        node_env = await asyncio.to_thread(ensure_on, self._manager, spec)
        logger.info("uv_envs: env ready at %s", node_env.env_path)
        # What Ray's URI cache counts; envs sharing one store venv each report it.
        return float(node_env.size_bytes)

    def modify_context(
        self,
        uris: list[str],
        runtime_env: RuntimeEnv,
        context: RuntimeEnvContext,
        logger: logging.Logger,
    ) -> None:
        """Point the worker at the env's interpreter (raises for another Python minor)."""
        del uris
        spec = _spec_of(runtime_env)
        if spec is None:
            return
        environment = environment_of(self._manager, spec)
        if quick_changes(str(environment.env_path)) != []:
            # Ray reuses a cached URI without calling create: the copy is proved here, through
            # the install (hashed, rebuilt from the lock if damaged). That blocks the agent's
            # loop, but only for a copy changed on disk since its install.
            logger.info("uv_envs: %s changed on disk; checking it", environment.env_path)
            ensure_on(self._manager, spec)
            environment = environment_of(self._manager, spec)
        ray_env = environment.ray_runtime_env()
        # Checked again by every worker as it starts, cached setup or not (_attest); no
        # server's round heals a field's env, so a changed one is rebuilt by the worker's start.
        relaunch = command(str(self._manager.settings.root), environment.key)
        context.py_executable = checked_executable(ray_env["py_executable"], relaunch)
        context.env_vars.update(ray_env["env_vars"])
        logger.info("uv_envs: worker runs %s", context.py_executable)

    def delete_uri(self, uri: str, logger: logging.Logger) -> float:
        """Release the URI's env through uv-envs' cleanup; the bytes freed (0 if leased)."""
        digest = uri.removeprefix(f"{FIELD}://")
        _, freed = release(self._manager, EnvKey(NODE_WORKFLOW, digest), timeout=0.0)
        logger.info("uv_envs: released %s (%d bytes)", uri, freed)
        return float(freed)


class ServedEnvPlugin(RuntimeEnvPlugin):
    """Builds a served env on a node that lacks it, before a worker starts from it.

    For WTB's runtime env, which carries only ``py_executable`` and
    ``env_vars``: Ray calls a plugin only for a field of its own name, and
    ``py_executable`` is Ray's own plugin, so this one is named after the other
    field such a runtime env carries, ``env_vars`` (``VIRTUAL_ENV``). It makes
    sure the interpreter Ray's ``py_executable`` plugin starts exists, in a
    sound copy, and has every worker check the copy again as it starts
    (:func:`~uv_envs.ray._attest.checked_executable`): Ray reuses a setup
    without calling plugins while a worker of it lives. A copy that is
    here costs the cheap check (:mod:`uv_envs.ray._attest`: a ``stat`` per
    file); one changed on disk since its install is hashed and, if damaged,
    repaired from its lock before the worker starts (or the setup fails naming
    the damage). A path under no served root is left to Ray.
    """

    name = "env_vars"
    # After Ray's py_executable plugin (10), whose context this one's modify_context wraps;
    # nothing runs the interpreter before the worker starts, so building it then is in time.
    priority = 15

    def __init__(self) -> None:
        self._managers: dict[tuple[str, str | None], EnvManager] = {}
        self._guard = threading.Lock()

    @staticmethod
    def validate(runtime_env_dict: dict[str, Any]) -> None:
        """Nothing to refuse: Ray validates ``env_vars`` itself."""
        del runtime_env_dict

    def get_uris(self, runtime_env: RuntimeEnv) -> list[str]:
        """None: the server, not Ray's URI cache, decides when a served env goes."""
        del runtime_env
        return []

    def _manager(self, record: PublishedEnv) -> EnvManager:
        """The node's manager of the record's root, downloading through the server's relay."""
        place = (record.root, record.wheel_relay)
        with self._guard:
            if place not in self._managers:
                self._managers[place] = node_manager(record.root, wheel_relay=record.wheel_relay)
            return self._managers[place]

    def _build(self, env_path: str, *, exists: bool = False) -> bool:
        """Install the served env at ``env_path`` here; False if no server serves that path.

        ``exists``: a copy is here (its interpreter is), so the install checks it
        and repairs it when damaged; one no server serves is left to Ray.
        """
        context = agent_context()
        if context is None:
            return False
        record: PublishedEnv | None = context.registry.lookup(env_path)
        if record is None:
            root = None if exists else context.registry.served_root(env_path)
            if root is None:
                return False
            msg = (
                f"node {context.node_id}: no environment at {env_path}; the uv-envs server "
                f"serving {root} knows none there (deleted, or never created)"
            )
            raise LookupError(msg)
        try:
            install_exact(
                self._manager(record), record.spec, key=record.key, node_id=context.node_id
            )
        except Exception as exc:
            # Ray's agent replays this failure to every worker of this runtime env for its
            # cache's time, without asking again: say how long, so a caller knows when to retry.
            seconds = failure_cache_seconds(os.environ)
            msg = (
                f"node {context.node_id} could not install environment {record.key}: {exc} "
                f"(Ray replays this failure to workers here for about {seconds} s, "
                f"{FAILURE_CACHE_VARIABLE}; the uv-envs server retries the install meanwhile)"
            )
            raise RuntimeError(msg) from exc
        return True

    async def create(
        self,
        uri: str | None,
        runtime_env: RuntimeEnv,
        context: RuntimeEnvContext,
        logger: logging.Logger,
    ) -> float:
        """If the runtime env runs a served env missing here, install it first."""
        del uri, context
        env_path = env_path_of(runtime_env)
        if env_path is None:
            return 0
        if python_exists(env_path):
            if quick_changes(env_path) == []:
                return 0  # as built: a stat per file, no lookup
            # Changed on disk since its install, or no manifest: checked (hashed), and
            # repaired from the lock when damaged, before the worker starts.
            logger.info("uv_envs: %s changed on disk; checking it before the worker", env_path)
            if await asyncio.to_thread(self._build, env_path, exists=True):
                logger.info("uv_envs: %s checked on this node", env_path)
            return 0
        logger.info("uv_envs: %s is missing on this node; asking the cluster for it", env_path)
        if await asyncio.to_thread(self._build, env_path):
            logger.info("uv_envs: installed %s on this node", env_path)
        return 0

    def modify_context(
        self,
        uris: list[str],
        runtime_env: RuntimeEnv,
        context: RuntimeEnvContext,
        logger: logging.Logger,
    ) -> None:
        """Have each worker of a uv-envs env check the copy as it starts (see the class)."""
        del uris
        env_path = env_path_of(runtime_env)
        # Only WTB's exact form, the env's own interpreter as Ray's plugin set it: another
        # command (a profiler, a wrapper) is the user's and left alone.
        if env_path is None or context.py_executable != f"{env_path}/.venv/bin/python":
            return
        context.py_executable = checked_executable(context.py_executable)
        logger.info("uv_envs: worker starts through %s", context.py_executable)
