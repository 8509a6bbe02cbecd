"""What runs on one node: build (or find) the env of a locked spec under the node's root.

Called by the provisioning tasks and by the runtime-env plugin, on the node
itself, with the cluster's Python (so ``Settings.ray = "auto"`` finds the
node's Ray). The node's root is ``root`` if given, else ``$UV_ENVS_ROOT`` as
the node sees it (``Settings.from_env()``). Concurrent calls for one spec on
one root build once: they queue on the env's lock, and the second finds it
READY.
"""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import attrs

from uv_envs._core.services import Services
from uv_envs._errors import RayNotAvailable, RayPythonMismatch, UvError
from uv_envs._manager import EnvManager
from uv_envs._models import Environment, EnvKey, EnvSpec
from uv_envs._settings import Settings
from uv_envs._store.envdirs import current_dir
from uv_envs._store.project import spec_hash
from uv_envs._store.venvs import linked_entry, recorded_size
from uv_envs._uv.raylink import RayInstall
from uv_envs._validation import normalize_python_request, parse_requirements

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


def _services(manager: EnvManager) -> Services:
    """The manager's core services: the lock store, the venv store and the Ray link.

    uv_envs.ray is part of uv-envs and seeds the stored resolution, which the
    public facade does not offer.
    """
    return manager._core.services  # noqa: SLF001


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
    install = _services(manager).ray_link.install()
    if install is None:
        raise RayNotAvailable(
            "uv_envs.ray needs Ray linking: this node's uv-envs sees no Ray "
            f"(Settings.ray = {manager.settings.ray!r})"
        )
    return install


def ensure_here(spec: LockedSpec, *, root: str | None = None, node_id: str = "") -> NodeEnv:
    """Build the spec's env on this node (or find it), installing exactly its lock."""
    with contextlib.closing(node_manager(root)) as manager:
        return ensure_on(manager, spec, node_id=node_id, root_from_env=root is None)


def ensure_on(
    manager: EnvManager, spec: LockedSpec, *, node_id: str = "", root_from_env: bool = True
) -> NodeEnv:
    """:func:`ensure_here` with a manager the caller keeps (the plugin's, one per agent)."""
    install = cluster_ray(manager)
    python = normalize_python_request(spec.python)
    minor = ".".join(python.split(".")[:2])
    if minor != install.minor:
        raise RayPythonMismatch(
            f"the spec asks for Python {python}, but this node's Ray {install.version} runs on "
            f"Python {install.python}; lock it with python={install.minor!r}"
        )
    key = spec.key(install.version)
    packages = parse_requirements(
        spec.packages, allow_direct_references=manager.settings.allow_direct_references
    )
    # Seed the node's stored resolution with the lock: the ensure below then copies
    # it and only checks it (uv lock --check --offline), never resolving anew.
    digest = spec_hash(EnvSpec(packages=packages, python=python), manager.settings.index)
    _services(manager).resolution_store.put(digest, spec.uv_lock.encode())
    environment = manager.ensure(key, packages=packages, python=python)
    locked = dict(manager.dependencies(key).locked)
    if locked != spec.locked:
        raise UvError(
            f"the lock did not install as it is on node {node_id or '?'}: uv checked it "
            "against this node's index settings and resolved again; give every node the "
            "same UV_ENVS_* index settings as the driver"
        )
    return NodeEnv(
        size_bytes=_store_size(manager, environment),
        node_id=node_id,
        env_path=str(environment.env_path),
        python_path=str(environment.python_path),
        locked=locked,
        root=str(manager.settings.root),
        root_from_env=root_from_env and bool(os.environ.get("UV_ENVS_ROOT")),
    )


def _store_size(manager: EnvManager, environment: Environment) -> int:
    """The bytes of the store entry the env's venv links (0 if unknown)."""
    store_dir = _services(manager).layout.store_dir
    entry = linked_entry(store_dir, current_dir(environment))
    size = None if entry is None else recorded_size(entry)
    return size or 0


def environment_of(manager: EnvManager, spec: LockedSpec) -> Environment:
    """The spec's env on ``manager``'s root as it is (raises if it was never built there)."""
    return manager.get(spec.key(cluster_ray(manager).version))


def release_here(spec: LockedSpec, *, root: str | None = None) -> int:
    """Delete the env unless leased, in use or busy, then prune what nothing links; bytes freed.

    Uses uv-envs' own delete and cleanup, so an env leased by a running
    process, or used by one (a worker still running in it: Ray may evict a URI
    whose worker lives on), stays; a later cleanup takes it once unused.
    """
    with contextlib.closing(node_manager(root)) as manager:
        return release_key(manager, spec.key(cluster_ray(manager).version))


def release_key(manager: EnvManager, key: EnvKey) -> int:
    """:func:`release_here` for a key on a manager."""
    store = _services(manager).venv_store
    before = sum(store.sizes().values())
    try:
        manager.delete(key, timeout=0.0)
    except (RuntimeError, TimeoutError):  # EnvironmentInUse (leased or in use), EnvironmentBusy
        return 0
    manager.cleanup(math.inf)
    return max(0, before - sum(store.sizes().values()))
