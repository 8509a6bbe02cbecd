"""What the cluster view answers: one node's copy of one served env, and one alive node."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs

from ._replica import ReplicaState


@attrs.frozen
class NodePresence:
    """Whether one node holds one served env, and what it proved of its copy."""

    node_id: str
    address: str
    state: ReplicaState
    error: str | None = None
    #: when a failed install is tried again (seconds since the epoch); None unless failed
    retry_at: float | None = None
    #: the digest of the node's copy at its last check, when (epoch seconds), and whether
    #: it is the server's (None: not known yet); see :mod:`uv_envs.ray._proofs`
    digest: str | None = None
    checked_at: float | None = None
    digest_matches: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the servers' answers (``next_retry``: ISO 8601, UTC)."""
        next_retry = None
        if self.retry_at is not None:
            next_retry = datetime.fromtimestamp(self.retry_at, UTC).isoformat()
        return {
            "node_id": self.node_id,
            "address": self.address,
            "state": str(self.state),
            "error": self.error,
            "next_retry": next_retry,
            "digest": self.digest,
            "checked_at": self.checked_at,
            "digest_matches": self.digest_matches,
        }


@attrs.frozen
class ClusterNode:
    """One alive node, and why the server cannot serve it (None when it can)."""

    node_id: str
    address: str
    problem: str | None = None
    #: whether its agent loads ServedEnvPlugin; without, envs reach it by the watcher only
    plugin: bool = False
    #: how long its Ray replays a failed runtime-env setup (BAD_RUNTIME_ENV_CACHE_TTL_SECONDS)
    failure_cache_seconds: int | None = None
    #: when it last checked a copy, and the env paths whose copy's digest is not the server's
    checked_at: float | None = None
    digest_differs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the servers' answers."""
        return {
            "node_id": self.node_id,
            "address": self.address,
            "problem": self.problem,
            "plugin": self.plugin,
            "failure_cache_seconds": self.failure_cache_seconds,
            "checked_at": self.checked_at,
            "digest_differs": list(self.digest_differs),
        }
