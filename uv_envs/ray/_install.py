"""Install exactly one lock on this node: what every route of uv_envs.ray runs on a node.

The driver's provisioning tasks, the two runtime-env plugins, the server's
tasks and its installs on nodes that joined late all end here, on the node
itself, with the cluster's Python (so ``Settings.ray = "auto"`` finds the
node's Ray): the Python minor is checked against that Ray, then one core call
(:meth:`uv_envs.EnvManager.install_exact`) leaves the env alone if it holds
the lock, else builds it from the lock or moves it there; nothing is resolved.
Concurrent calls for one env on one root build once: they queue on its lock,
and the later ones find it holding the lock. Releasing goes through uv-envs'
own delete and cleanup, so a leased env, or one a process still runs in, stays.
"""

from __future__ import annotations

import contextlib
import enum
import math
import os
from pathlib import Path

import attrs

from uv_envs._errors import EnvironmentBusy, EnvironmentInUse, RayNotAvailable, RayPythonMismatch
from uv_envs._manager import EnvManager
from uv_envs._models import DeleteStatus, Environment, EnvKey
from uv_envs._reports import Provisioned
from uv_envs._settings import Settings
from uv_envs._store.envdirs import current_dir
from uv_envs._store.layout import Layout
from uv_envs._store.project import read_locked
from uv_envs._store.venvs import VenvStore, linked_entry, recorded_size
from uv_envs._uv import raylink
from uv_envs._uv.raylink import RayInstall

from ._spec import LockedSpec


@attrs.frozen
class NodeEnv:
    """The env of a spec on one node."""

    node_id: str
    env_path: str
    python_path: str
    locked: dict[str, str]
    root: str
    root_from_env: bool
    size_bytes: int = 0


class ReleaseOutcome(enum.StrEnum):
    """What releasing an env did on one node."""

    RELEASED = "released"
    ABSENT = "absent"
    KEPT = "kept"  # leased (or locked) by a process on that node: a later cleanup takes it


def node_manager(root: str | None = None, *, wheel_relay: str | None = None) -> EnvManager:
    """The node's manager: ``root``, else the node's ``UV_ENVS_ROOT`` and other variables.

    ``wheel_relay``: the server's relay, which the node downloads through.
    """
    overrides: dict[str, object] = {} if root is None else {"root": Path(root)}
    if wheel_relay is not None:
        overrides["wheel_relay"] = wheel_relay
    return EnvManager(Settings.from_env(None, **overrides))


def cluster_ray(manager: EnvManager) -> RayInstall:
    """The node's Ray, which every env built here must work with."""
    install = raylink.resolve(manager.settings.ray)
    if install is None:
        raise RayNotAvailable(
            "uv_envs.ray needs Ray linking: this node's uv-envs sees no Ray "
            f"(Settings.ray = {manager.settings.ray!r})"
        )
    return install


def install_exact(
    manager: EnvManager, spec: LockedSpec, *, key: EnvKey | None = None, node_id: str = ""
) -> Provisioned:
    """Give this node the env ``key`` (the spec's own by default) at exactly the spec's lock.

    Raises :class:`~uv_envs.RayPythonMismatch` when the spec is for another
    Python minor than this node's Ray, and what uv-envs raises (``UvError``
    with uv's message, ``RayImportFailed`` ...) when the install fails.
    """
    install = cluster_ray(manager)
    python = spec.python
    if raylink.minor_of(python) != install.minor:
        where = f"node {node_id}'s" if node_id else "this node's"
        what = "the spec" if key is None else f"environment {key}"
        raise RayPythonMismatch(
            f"{where} Ray {install.version} runs on Python {install.python}, but {what} is "
            f"locked for Python {python}; lock it with python={install.minor!r}"
        )
    key = key if key is not None else spec.key(install.version)
    return manager.install_exact(key, pyproject_toml=spec.pyproject_toml, uv_lock=spec.uv_lock)


def ensure_on(
    manager: EnvManager, spec: LockedSpec, *, node_id: str = "", root_from_env: bool = True
) -> NodeEnv:
    """:func:`install_exact` of the spec's own env; what the driver and its plugin need of it."""
    environment = install_exact(manager, spec, node_id=node_id).environment
    entry = linked_entry(Layout(manager.settings.root).store_dir, current_dir(environment))
    size = None if entry is None else recorded_size(entry)
    return NodeEnv(
        size_bytes=size or 0,
        node_id=node_id,
        env_path=str(environment.env_path),
        python_path=str(environment.python_path),
        locked=read_locked(current_dir(environment)),
        root=str(manager.settings.root),
        root_from_env=root_from_env and bool(os.environ.get("UV_ENVS_ROOT")),
    )


def ensure_here(spec: LockedSpec, *, root: str | None = None, node_id: str = "") -> NodeEnv:
    """Build the spec's env on this node (or find it), installing exactly its lock."""
    with contextlib.closing(node_manager(root)) as manager:
        return ensure_on(manager, spec, node_id=node_id, root_from_env=root is None)


def environment_of(manager: EnvManager, spec: LockedSpec) -> Environment:
    """The spec's env on ``manager``'s root as it is (raises if it was never built there)."""
    return manager.get(spec.key(cluster_ray(manager).version))


def _store_bytes(manager: EnvManager) -> int:
    return sum(VenvStore(Layout(manager.settings.root), 0.0).sizes().values())


def release(manager: EnvManager, key: EnvKey, *, timeout: float) -> tuple[ReleaseOutcome, int]:
    """Delete the env unless leased, in use or busy, then prune what nothing links.

    ``timeout``: seconds to wait for the env's lock (an install or a check there
    ends soon). Returns what happened and the store bytes freed.
    """
    before = _store_bytes(manager)
    try:
        result = manager.delete(key, timeout=timeout)
    except (EnvironmentInUse, EnvironmentBusy):
        return ReleaseOutcome.KEPT, 0
    if result.status is DeleteStatus.DEFERRED:
        return ReleaseOutcome.KEPT, 0  # withdrawn here; the next release (or reaper) removes it
    manager.cleanup(math.inf)  # prunes store entries nothing links any more
    freed = max(0, before - _store_bytes(manager))
    if result.status is DeleteStatus.DELETED:
        return ReleaseOutcome.RELEASED, freed
    return ReleaseOutcome.ABSENT, freed


def release_here(spec: LockedSpec, *, root: str | None = None) -> int:
    """Release the spec's env on this node (:func:`release`, not waiting); bytes freed."""
    with contextlib.closing(node_manager(root)) as manager:
        return release(manager, spec.key(cluster_ray(manager).version), timeout=0.0)[1]
