"""One node's copy of a served env: the server's exact lock, under the server's path.

Runs on the node itself (in a pinned Ray task, or in the runtime-env agent
through the plugin) with the node's own uv-envs settings (its index, cache,
Python search paths), but with the server's root path, so that the
``env_path`` the server answered, and ``python_path`` computed from it, are
valid on this node too. Nothing is resolved here: the lock is installed as it
is (``uv sync --frozen``), and an env already holding it is left alone.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import math
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from uv_envs._errors import (
    EnvironmentBusy,
    EnvironmentInUse,
    RayNodeUnusable,
    RayPythonMismatch,
    UvEnvsError,
)
from uv_envs._manager import EnvManager
from uv_envs._models import DeleteStatus, EnvKey, EnvSpec, EnvStatus
from uv_envs._store.project import spec_hash
from uv_envs._validation import normalize_python_request, parse_requirements

from ._node import _services, cluster_ray, node_manager
from ._published import PublishedEnv

#: Seconds a node waits for an env's lock before it reports its copy kept.
RELEASE_LOCK_TIMEOUT = 10.0
#: The class name of the plugin that builds a served env on a node lacking it.
SERVED_PLUGIN_CLASS = "uv_envs.ray.ServedEnvPlugin"


class ReplicaState(enum.StrEnum):
    """Where one node stands with one served env."""

    PRESENT = "present"  # it holds the env at the server's lock
    MISSING = "missing"  # not (yet) there, or at another lock
    FAILED = "failed"  # the last install there failed; ``error`` says why


class ReleaseOutcome(enum.StrEnum):
    """What releasing a served env did on one node."""

    RELEASED = "released"
    ABSENT = "absent"
    KEPT = "kept"  # leased (or locked) by a process on that node: a later cleanup takes it


@attrs.frozen
class NodeFacts:
    """What the server checks of a node before it serves it."""

    node_id: str
    address: str
    ray_version: str
    python_minor: str
    root_error: str | None = None
    #: whether the node's agent loads ServedEnvPlugin (else only the watcher serves it)
    plugin: bool = False


def lock_digest(uv_lock: str) -> str:
    """A short fingerprint of a lock's text: which lock a node holds."""
    return hashlib.sha256(uv_lock.encode()).hexdigest()[:32]


def node_facts(root: str, node_id: str, address: str) -> NodeFacts:
    """The node's Ray, its Python minor, and whether it can hold ``root`` (made if missing).

    Runs in the node's own Ray Python, the one its workers run, so that is the minor.
    """
    import ray  # noqa: PLC0415 - runs inside a Ray task

    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    root_error = None
    try:
        Path(root).mkdir(parents=True, exist_ok=True)
        with contextlib.closing(node_manager(root)):
            pass
        if not os.access(root, os.W_OK):
            root_error = f"{root} is not writable there"
    except (OSError, UvEnvsError) as exc:
        root_error = f"{root} cannot be used there: {exc}"
    plugin = SERVED_PLUGIN_CLASS in os.environ.get("RAY_RUNTIME_ENV_PLUGINS", "")
    return NodeFacts(node_id, address, ray.__version__, python, root_error, plugin=plugin)


def install_on(manager: EnvManager, record: PublishedEnv, node_id: str) -> None:
    """Give this node the env of ``record`` at exactly its lock (nothing if it has it).

    Raises what uv-envs raises (``UvError`` with uv's message ...), with the
    node named in :class:`~uv_envs.RayPythonMismatch`.
    """
    spec = record.spec
    install = cluster_ray(manager)
    python = normalize_python_request(spec.python)
    if ".".join(python.split(".")[:2]) != install.minor:
        raise RayPythonMismatch(
            f"node {node_id} runs Ray {install.version} on Python {install.python}, but "
            f"environment {record.key} is locked for Python {python}"
        )
    if holds(manager, record):
        return
    key = record.key
    packages = parse_requirements(
        spec.packages, allow_direct_references=manager.settings.allow_direct_references
    )
    # Seed the node's stored resolution with the server's lock: the ensure below then
    # copies it and only checks it, never resolving anew.
    digest = spec_hash(EnvSpec(packages=packages, python=python), manager.settings.index)
    _services(manager).resolution_store.put(digest, record.uv_lock.encode())
    manager.ensure(key, packages=packages, python=python)
    if not holds(manager, record):
        # Same spec, another lock (an update on the server): move to the server's.
        manager.adopt(key, pyproject_toml=record.pyproject_toml, uv_lock=record.uv_lock)


def holds(manager: EnvManager, record: PublishedEnv) -> bool:
    """Whether this node's env of ``record`` is READY at exactly the record's lock."""
    report = manager.status(record.key)
    if report.status is not EnvStatus.READY or report.environment is None:
        return False
    if not Path(record.python_path).exists():
        return False
    try:
        current = manager.export(record.key).uv_lock
    except (OSError, UvEnvsError):
        return False
    return current == record.uv_lock


def install_replica(record: PublishedEnv, node_id: str) -> tuple[ReplicaState, str | None]:
    """:func:`install_on` under the record's root; the state it left and why it failed."""
    try:
        with contextlib.closing(
            node_manager(record.root, wheel_relay=record.wheel_relay)
        ) as manager:
            install_on(manager, record, node_id)
    except (OSError, UvEnvsError) as exc:
        return ReplicaState.FAILED, f"{type(exc).__name__}: {exc}"
    return ReplicaState.PRESENT, None


def present_here(locks: Mapping[str, str]) -> dict[str, bool]:
    """For each env path -> lock digest: whether this node holds that env at that lock.

    Cheap enough to run every few seconds: one stat and one small read per env.
    """
    found = {}
    for env_path, digest in locks.items():
        python = Path(env_path) / ".venv" / "bin" / "python"
        lock = Path(env_path) / "uv.lock"
        try:
            found[env_path] = python.exists() and lock_digest(lock.read_text()) == digest
        except OSError:
            found[env_path] = False
    return found


def release_replica(root: str, key: EnvKey) -> ReleaseOutcome:
    """Delete this node's copy of ``key`` unless a process there uses or leases it; prune."""
    with contextlib.closing(node_manager(root)) as manager:
        try:
            # A short wait for the env's lock: an install or a check there ends soon.
            result = manager.delete(key, timeout=RELEASE_LOCK_TIMEOUT)
        except (EnvironmentInUse, EnvironmentBusy):
            return ReleaseOutcome.KEPT
        manager.cleanup(math.inf)  # prunes store entries nothing links any more
    return (
        ReleaseOutcome.RELEASED if result.status is DeleteStatus.DELETED else ReleaseOutcome.ABSENT
    )


def check_python(facts: Iterable[NodeFacts], minor: str) -> None:
    """Refuse a cluster where a node's Ray runs another Python minor than ``minor``."""
    for node in facts:
        if node.python_minor != minor:
            raise RayNodeUnusable(
                f"node {node.node_id} ({node.address}) runs Ray on Python {node.python_minor}, "
                f"the server's envs are for Python {minor}: every node must run one minor",
                node_id=node.node_id,
            )
