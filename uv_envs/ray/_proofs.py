"""The server's table of what each node proved of its copies: digest, when, and whether it matches.

Filled by the reconciling round (:meth:`uv_envs.ray._fanout.Fanout.reconcile`),
which has every node check its copies (:func:`uv_envs.ray._attest.attest_here`);
read by the cluster view (an env's ``nodes``, ``GET /v1/cluster``). A node's
copy whose digest is not the server's is flagged: a damaged copy is repaired by
the same round; a sound copy with another digest was installed from other
wheels (another platform), and stays flagged.
"""

from __future__ import annotations

import logging
import threading

import attrs

from ._attest import CopyCheck

logger = logging.getLogger("uv_envs.ray")


@attrs.frozen
class Proof:
    """One node's last check of one env's copy, against the server's digest."""

    digest: str | None = None
    checked_at: float | None = None
    #: None when either digest is unknown (not checked yet, or a record from before digests)
    digest_matches: bool | None = None


class Proofs:
    """Env path -> node id -> the node's last :class:`CopyCheck`, and the server's digests."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._checks: dict[str, dict[str, CopyCheck]] = {}
        self._expected: dict[str, str] = {}

    def expect(self, env_path: str, digest: str) -> None:
        """The server's digest of the env at ``env_path`` (a new lock: older checks go)."""
        with self._guard:
            if self._expected.get(env_path) != digest:
                self._checks.pop(env_path, None)
            self._expected[env_path] = digest

    def forget(self, env_path: str) -> None:
        """The env was deleted: nothing is known of it any more."""
        with self._guard:
            self._checks.pop(env_path, None)
            self._expected.pop(env_path, None)

    def note(self, env_path: str, node: str, check: CopyCheck | None) -> bool:
        """Note what ``node`` found of its copy (None: none at the lock); True if sound."""
        if check is not None and check.damage:
            logger.warning("node %s: %s is damaged: %s", node, env_path, "; ".join(check.damage))
        with self._guard:
            checks = self._checks.setdefault(env_path, {})
            if check is None:
                checks.pop(node, None)
            else:
                checks[node] = check
        return check is not None and not check.damage

    def of(self, env_path: str, node: str) -> Proof:
        """``node``'s last proof of the env at ``env_path``."""
        with self._guard:
            check = self._checks.get(env_path, {}).get(node)
            expected = self._expected.get(env_path, "")
        if check is None:
            return Proof()
        matches = None if not (expected and check.digest) else check.digest == expected
        return Proof(check.digest or None, check.checked_at, matches)

    def of_node(self, node: str) -> tuple[float | None, tuple[str, ...]]:
        """When ``node`` last checked a copy, and the env paths whose digest differs there."""
        with self._guard:
            paths = [p for p, checks in self._checks.items() if node in checks]
            last = max((self._checks[p][node].checked_at for p in paths), default=None)
        differs = tuple(sorted(p for p in paths if self.of(p, node).digest_matches is False))
        return last, differs
