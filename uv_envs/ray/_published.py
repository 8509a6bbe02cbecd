"""What a server publishes into its cluster: the lock of every env it hands out, by path.

A node that must start a worker from an env it does not have (it joined after
the create, or lost the env) finds here what to install: the env's key, its
root and its two project files, under the env's path. The records live in
Ray's own key-value store (the GCS, namespace ``uv_envs``), so no node needs
the server's address and every node sees the same records. A path with no
record under a served root names no env the server knows: the plugin refuses
it instead of letting Ray restart a worker forever.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs
import cattrs.preconf.json

from uv_envs._models import EnvKey

from ._spec import LockedSpec

NAMESPACE = b"uv_envs"
_ENV_PREFIX = "env:"
_ROOT_PREFIX = "root:"
#: Seconds one key-value call may take before the caller gives up on the GCS.
KV_TIMEOUT = 10.0
# Ray's positional flags, named: overwrite an existing value; delete one key, not a prefix.
_OVERWRITE = True
_ONE_KEY = False
_converter = cattrs.preconf.json.make_converter()


class KeyValue(Protocol):
    """The few calls of Ray's GCS client this module makes (a dict fakes it in tests)."""

    def internal_kv_get(
        self, key: bytes, namespace: bytes | None, timeout: float | None = None
    ) -> bytes | None: ...

    def internal_kv_put(
        self,
        key: bytes,
        value: bytes,
        overwrite: bool,  # noqa: FBT001 - Ray's own signature
        namespace: bytes | None,
        timeout: float | None = None,
    ) -> int: ...

    def internal_kv_del(
        self,
        key: bytes,
        del_by_prefix: bool,  # noqa: FBT001 - Ray's own signature
        namespace: bytes | None,
        timeout: float | None = None,
    ) -> int: ...

    def internal_kv_keys(
        self, prefix: bytes, namespace: bytes | None, timeout: float | None = None
    ) -> list[bytes]: ...


@attrs.frozen
class PublishedEnv:
    """One served env: where it lives on every node and exactly what it holds."""

    workflow_id: str
    node_id: str
    version_id: str
    root: str
    env_path: str
    pyproject_toml: str
    uv_lock: str
    #: the server's wheel relay: nodes download the lock's files through it
    wheel_relay: str | None = None
    #: the server's env digest: what every node's copy of the lock should prove
    digest: str = ""

    @property
    def key(self) -> EnvKey:
        """The env's key on every node (the same as on the server)."""
        return EnvKey(self.workflow_id, self.node_id, self.version_id)

    @property
    def spec(self) -> LockedSpec:
        """The two project files as a spec (validates them)."""
        return LockedSpec(self.pyproject_toml, self.uv_lock)

    @property
    def python_path(self) -> str:
        """The interpreter a worker runs, as WTB computes it from ``env_path``."""
        return str(Path(self.env_path) / ".venv" / "bin" / "python")

    def to_json(self) -> bytes:
        """The record as stored."""
        return _converter.dumps(self).encode()

    @classmethod
    def from_json(cls, data: bytes) -> PublishedEnv:
        """Read a stored record."""
        return _converter.loads(data, cls)


def env_path_of(runtime_env: Mapping[str, Any]) -> str | None:
    """The env a runtime env runs in, from ``py_executable`` or ``VIRTUAL_ENV``; None if neither.

    WTB passes ``py_executable = env_path + "/.venv/bin/python"`` and
    ``env_vars = {"VIRTUAL_ENV": env_path + "/.venv"}``.
    """
    executable = runtime_env.get("py_executable") or ""
    parts = Path(str(executable)).parts if executable else ()
    if len(parts) > 3 and parts[-3:-1] == (".venv", "bin"):  # noqa: PLR2004 - .venv/bin/python
        return str(Path(*parts[:-3]))
    env_vars = runtime_env.get("env_vars") or {}
    venv = env_vars.get("VIRTUAL_ENV") if isinstance(env_vars, dict) else None
    if isinstance(venv, str) and Path(venv).name == ".venv":
        return str(Path(venv).parent)
    return None


@attrs.frozen
class Registry:
    """The served envs of one cluster, in its key-value store."""

    kv: KeyValue

    def publish(self, record: PublishedEnv) -> None:
        """Record (or replace) the env at its path, and its root as served."""
        self.kv.internal_kv_put(
            f"{_ROOT_PREFIX}{record.root}".encode(), b"1", _OVERWRITE, NAMESPACE, timeout=KV_TIMEOUT
        )
        self.kv.internal_kv_put(
            f"{_ENV_PREFIX}{record.env_path}".encode(),
            record.to_json(),
            _OVERWRITE,
            NAMESPACE,
            timeout=KV_TIMEOUT,
        )

    def withdraw(self, env_path: str) -> None:
        """Forget the env at ``env_path`` (it was deleted)."""
        self.kv.internal_kv_del(
            f"{_ENV_PREFIX}{env_path}".encode(), _ONE_KEY, NAMESPACE, timeout=KV_TIMEOUT
        )

    def lookup(self, env_path: str) -> PublishedEnv | None:
        """The record of the env at ``env_path``, if the server published one."""
        data = self.kv.internal_kv_get(
            f"{_ENV_PREFIX}{env_path}".encode(), NAMESPACE, timeout=KV_TIMEOUT
        )
        return None if data is None else PublishedEnv.from_json(data)

    def served_root(self, path: str) -> str | None:
        """The served root that ``path`` lies under, if any."""
        keys = self.kv.internal_kv_keys(_ROOT_PREFIX.encode(), NAMESPACE, timeout=KV_TIMEOUT)
        for raw in keys:
            root = raw.decode().removeprefix(_ROOT_PREFIX)
            if Path(path).is_relative_to(root):
                return root
        return None

    def records(self) -> list[PublishedEnv]:
        """Every published env."""
        keys = self.kv.internal_kv_keys(_ENV_PREFIX.encode(), NAMESPACE, timeout=KV_TIMEOUT)
        found = []
        for raw in keys:
            data = self.kv.internal_kv_get(raw, NAMESPACE, timeout=KV_TIMEOUT)
            if data is not None:
                found.append(PublishedEnv.from_json(data))
        return found


def driver_registry() -> Registry:
    """The registry of the cluster this process is connected to (``ray.init`` has run)."""
    import ray._private.worker  # noqa: PLC0415 - Ray only where a cluster is served

    client: KeyValue = ray._private.worker.global_worker.gcs_client  # type: ignore[attr-defined]  # noqa: SLF001
    return Registry(client)


@attrs.frozen
class AgentContext:
    """Inside Ray's runtime-env agent: the cluster's registry and this node's id."""

    registry: Registry
    node_id: str


@functools.cache
def agent_context() -> AgentContext | None:
    """The registry and node id, from inside Ray's runtime-env agent (None elsewhere).

    Ray builds plugins without arguments and keeps its GCS client to itself;
    the agent's command line carries the GCS address, the cluster id and the
    node id, so the plugin makes a client of its own from them.
    """
    parser = argparse.ArgumentParser(add_help=False)
    for option in ("--gcs-address", "--cluster-id-hex", "--node-id"):
        parser.add_argument(option, default="")
    known, _ = parser.parse_known_args(sys.argv[1:])
    if not known.gcs_address:
        return None
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # noqa: PLC0415 - only in Ray's agent

    client: KeyValue = GcsClient(address=known.gcs_address, cluster_id=known.cluster_id_hex)
    return AgentContext(Registry(client), known.node_id)
