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
import os
import platform
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from uv_envs._errors import RayNodeUnusable, UvEnvsError
from uv_envs._models import EnvKey
from uv_envs._uv.raylink import minor_of

from ._install import ReleaseOutcome, install_exact, node_manager, release
from ._published import PublishedEnv

#: The class name of the plugin that builds a served env on a node lacking it.
SERVED_PLUGIN_CLASS = "uv_envs.ray.ServedEnvPlugin"
#: The variable of Ray's runtime-env agent (``runtime_env_consts``) that sets how long it
#: replays a failed setup of one runtime env before trying it again, and Ray's default.
FAILURE_CACHE_VARIABLE = "BAD_RUNTIME_ENV_CACHE_TTL_SECONDS"
RAY_FAILURE_CACHE_SECONDS = 600
#: Above this, a node whose install failed stays unusable for that env long after it is
#: fixed (WTB's runtime env of an env never changes): the server warns. Docs say 5.
FAILURE_CACHE_WARNING_SECONDS = 30
#: Seconds a node waits for an env's lock before it reports its copy kept.
RELEASE_LOCK_TIMEOUT = 10.0


class ReplicaState(enum.StrEnum):
    """Where one node stands with one served env."""

    PRESENT = "present"  # it holds the env at the server's lock
    MISSING = "missing"  # not (yet) there, or at another lock
    FAILED = "failed"  # the last install there failed; ``error`` says why


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
    #: how long the node's Ray replays a failed runtime-env setup (its raylet's environment)
    failure_cache_seconds: int = RAY_FAILURE_CACHE_SECONDS


def failure_cache_seconds(environ: Mapping[str, str]) -> int:
    """How long Ray's runtime-env agent started with ``environ`` replays a failed setup.

    Read as Ray reads it (``ray_constants.env_integer``): an integer, else Ray's default.
    """
    try:
        return int(environ[FAILURE_CACHE_VARIABLE])
    except (KeyError, ValueError):
        return RAY_FAILURE_CACHE_SECONDS


def lock_digest(uv_lock: str) -> str:
    """A short fingerprint of a lock's text: which lock a node holds."""
    return hashlib.sha256(uv_lock.encode()).hexdigest()[:32]


def node_facts(root: str, node_id: str, address: str) -> NodeFacts:
    """The node's Ray, its Python minor, and whether it can hold ``root`` (made if missing).

    Runs in the node's own Ray Python, the one its workers run, so that is the minor.
    """
    import ray  # noqa: PLC0415 - runs inside a Ray task

    python = minor_of(platform.python_version())
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
    return NodeFacts(
        node_id,
        address,
        ray.__version__,
        python,
        root_error,
        plugin=plugin,
        failure_cache_seconds=failure_cache_seconds(os.environ),
    )


def install_replica(record: PublishedEnv, node_id: str) -> tuple[ReplicaState, str | None]:
    """:func:`~uv_envs.ray._install.install_exact` of the record under its root, its relay.

    The state it left, and why it failed.
    """
    try:
        with contextlib.closing(
            node_manager(record.root, wheel_relay=record.wheel_relay)
        ) as manager:
            install_exact(manager, record.spec, key=record.key, node_id=node_id)
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


def check_python(facts: Iterable[NodeFacts], minor: str) -> None:
    """Refuse a cluster where a node's Ray runs another Python minor than ``minor``."""
    for node in facts:
        if node.python_minor != minor:
            raise RayNodeUnusable(
                f"node {node.node_id} ({node.address}) runs Ray on Python {node.python_minor}, "
                f"the server's envs are for Python {minor}: every node must run one minor",
                node_id=node.node_id,
            )


# -- the bodies of the server's pinned tasks (uv_envs.ray._fanout), run on each node --------


def _this_node() -> str:
    import ray  # noqa: PLC0415 - runs inside a Ray task

    return str(ray.get_runtime_context().get_node_id())


def facts_task(root: str) -> NodeFacts:
    """:func:`node_facts` of this node (its address is filled in by the server)."""
    return node_facts(root, _this_node(), "")


def install_task(record: PublishedEnv) -> tuple[ReplicaState, str | None]:
    """:func:`install_replica` on this node."""
    return install_replica(record, _this_node())


def release_task(root: str, key: EnvKey) -> ReleaseOutcome:
    """Delete this node's copy of ``key`` unless a process there uses or leases it; prune."""
    with contextlib.closing(node_manager(root)) as manager:
        return release(manager, key, timeout=RELEASE_LOCK_TIMEOUT)[0]
