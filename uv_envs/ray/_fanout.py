"""A server's view of its cluster: every served env on every alive node, and who has what.

One pinned task per node (:mod:`uv_envs.ray._tasks`) runs the node's side
(:mod:`uv_envs.ray._replica`, installing through :mod:`uv_envs.ray._install`). The
table of which node holds which env at which lock is kept here, in memory,
from the answers of those tasks; :meth:`Fanout.reconcile` refreshes it from
the nodes themselves, installs what a node lacks (it joined late, lost the
env, or failed to install it and its backoff, :mod:`uv_envs.ray._retry`, ended),
and notes the nodes that cannot be served and why.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import attrs

from uv_envs._errors import RayNodeUnusable, RayNotAvailable
from uv_envs._models import EnvKey

from ._attest import attest_here
from ._install import ReleaseOutcome
from ._proofs import Proofs
from ._published import PublishedEnv, Registry
from ._replica import (
    FAILURE_CACHE_VARIABLE,
    FAILURE_CACHE_WARNING_SECONDS,
    NodeFacts,
    ReplicaState,
    check_python,
    facts_task,
    install_task,
    lock_digest,
    release_task,
)
from ._retry import Backoff, Retries
from ._tasks import alive, on_nodes
from ._views import ClusterNode, NodePresence

logger = logging.getLogger("uv_envs.ray")

#: A node's install result: the state it left and why it failed.
Result = tuple[ReplicaState, str | None]

#: Seconds a node may take to install one env.
INSTALL_TIMEOUT = 1800.0
#: Seconds a node may take to answer a quick question (its facts, what it holds).
ASK_TIMEOUT = 120.0
#: A delete asks a node that keeps its copy (in use) this many times, this far apart.
RELEASE_ATTEMPTS = 4
RELEASE_PAUSE = 2.0


def _install_result(answer: Any) -> Result:  # noqa: ANN401 - a task's answer
    """A node's install answer; a task that raised (node gone, timeout) is a failure there."""
    if isinstance(answer, BaseException):
        return ReplicaState.FAILED, f"{type(answer).__name__}: {answer}"
    result: Result = answer
    return result


def _released(answer: object) -> bool:
    return answer in (ReleaseOutcome.RELEASED, ReleaseOutcome.ABSENT)


class Fanout:
    """The served envs of one root across the alive nodes of the connected cluster."""

    def __init__(
        self, root: str, registry: Registry, python_minor: str, backoff: Backoff | None = None
    ) -> None:
        self.root = root
        self.registry = registry
        self.python_minor = python_minor
        self._guard = threading.Lock()
        #: env path -> node id -> (state, error)
        self._states: dict[str, dict[str, tuple[ReplicaState, str | None]]] = {}
        #: node id -> why it cannot be served ("" when it can)
        self._problems: dict[str, str] = {}
        self._addresses: dict[str, str] = {}
        self._facts: dict[str, NodeFacts] = {}
        #: env path -> what every node must hold there
        self._records: dict[str, PublishedEnv] = {}
        #: env paths a change is installing on every node right now
        self._installing: set[str] = set()
        #: env path -> key of deleted envs some node kept a copy of (in use there)
        self._leftovers: dict[str, EnvKey] = {}
        #: failed installs, and when each is tried again by a reconciling round
        self._retries = Retries(backoff)
        #: what each node proved of its copies at the last reconciling round
        self.proofs = Proofs()

    # -- nodes -------------------------------------------------------------------------

    def check(self, nodes: dict[str, str] | None = None) -> dict[str, str]:
        """Ask new nodes their facts; raise for a node that cannot hold the root or the envs.

        Returns node id -> problem for the nodes asked (empty problem: servable).
        """
        nodes = alive() if nodes is None else nodes
        if not nodes:
            raise RayNotAvailable("the Ray cluster has no alive node")
        answers = on_nodes(facts_task, list(nodes), (self.root,), ASK_TIMEOUT)
        facts = []
        for node, answer in answers.items():
            if isinstance(answer, BaseException):
                raise RayNodeUnusable(
                    f"node {node} ({nodes[node]}) did not answer: {answer}", node_id=node
                )
            if answer.root_error:
                raise RayNodeUnusable(
                    f"node {node} ({nodes[node]}) cannot hold the root: {answer.root_error}; "
                    "give every node the same root path, writable by the user running Ray",
                    node_id=node,
                )
            facts.append(attrs.evolve(answer, address=nodes[node]))
            if answer.failure_cache_seconds > FAILURE_CACHE_WARNING_SECONDS:
                logger.warning(
                    "node %s: its Ray replays a failed runtime-env setup for %d s, so after an "
                    "install there fails, an env stays unusable there that long; start its Ray "
                    "with %s=5 (docs/ray.md)",
                    node, answer.failure_cache_seconds, FAILURE_CACHE_VARIABLE,
                )  # fmt: skip
        check_python(facts, self.python_minor)
        with self._guard:
            self._addresses.update(nodes)
            self._problems.update(dict.fromkeys(nodes, ""))
            self._facts.update({f.node_id: f for f in facts})
        return dict.fromkeys(nodes, "")

    def nodes(self) -> tuple[ClusterNode, ...]:
        """Every node seen alive at the last look, with why it is not served, if it is not."""
        with self._guard:
            nodes = [
                (node, self._addresses[node], self._problems.get(node), self._facts.get(node))
                for node in sorted(self._addresses)
            ]
        return tuple(
            ClusterNode(
                node,
                address,
                problem or None,
                plugin=facts is not None and facts.plugin,
                failure_cache_seconds=facts.failure_cache_seconds if facts else None,
                checked_at=self.proofs.of_node(node)[0],
                digest_differs=self.proofs.of_node(node)[1],
            )
            for node, address, problem, facts in nodes
        )

    def _admit(self, nodes: dict[str, str]) -> list[str]:
        """The alive nodes that can be served; new ones are asked first, bad ones noted."""
        with self._guard:
            gone = set(self._addresses) - set(nodes)
            for node in gone:
                self._retries.forget_node(node)  # tried at once if it rejoins
                del self._addresses[node]
                self._problems.pop(node, None)
                self._facts.pop(node, None)
            new = {n: a for n, a in nodes.items() if n not in self._problems}
        for node, address in new.items():
            try:
                self.check({node: address})
            except RayNotAvailable as exc:
                logger.warning("cannot serve %s", exc)
                with self._guard:
                    self._addresses[node] = address
                    self._problems[node] = str(exc)
        with self._guard:
            return [n for n in nodes if not self._problems.get(n)]

    # -- envs --------------------------------------------------------------------------

    def publish(self, record: PublishedEnv) -> None:
        """Make the record known to the cluster (the plugin builds from it) and to reconcile."""
        self.registry.publish(record)
        self.proofs.expect(record.env_path, record.digest)
        with self._guard:
            self._records[record.env_path] = record

    def keep(self, record: PublishedEnv) -> None:
        """Serve the record without telling the cluster (its head is away; :meth:`republish`)."""
        self.proofs.expect(record.env_path, record.digest)
        with self._guard:
            self._states.pop(record.env_path, None)
            self._retries.forget_env(record.env_path)
            self._records[record.env_path] = record

    def drop(self, key: EnvKey, env_path: str) -> None:
        """Serve the env no more, without telling the cluster; the nodes release it later."""
        self.proofs.forget(env_path)
        with self._guard:
            self._states.pop(env_path, None)
            self._records.pop(env_path, None)
            self._retries.forget_env(env_path)
            self._leftovers[env_path] = key  # released by the next reconciling round

    def republish(self) -> None:
        """Every served record into the cluster again, deleted ones out (the head is back)."""
        with self._guard:
            records = list(self._records.values())
            withdrawn = [p for p in self._leftovers if p not in self._records]
        for path in withdrawn:
            self.registry.withdraw(path)
        for record in records:
            self.registry.publish(record)

    def install(self, record: PublishedEnv) -> dict[str, tuple[ReplicaState, str | None]]:
        """Publish the record and install it on every servable node; node id -> result."""
        with self._guard:
            self._states.pop(record.env_path, None)  # a new lock: nothing is known of it yet
            self._retries.forget_env(record.env_path)
            self._installing.add(record.env_path)  # the reconciling round leaves it to us
        try:
            self.publish(record)
            nodes = self._admit(alive())
            answers = on_nodes(install_task, nodes, (record,), INSTALL_TIMEOUT)
        finally:
            with self._guard:
                self._installing.discard(record.env_path)
        results = {node: _install_result(answer) for node, answer in answers.items()}
        with self._guard:
            self._states[record.env_path] = {}
        for node, result in results.items():
            self._note(record, node, result)
        return results

    def release(self, key: EnvKey, env_path: str) -> tuple[str, ...]:
        """Withdraw the env and delete it on every alive node; ``node@address`` of those kept.

        A copy a process on its node still uses or leases stays; it is asked
        again a few times at once (a killed worker exits a moment later), then
        at every reconciling round until it goes.
        """
        self.registry.withdraw(env_path)
        self.proofs.forget(env_path)
        with self._guard:
            self._states.pop(env_path, None)
            self._records.pop(env_path, None)
            self._retries.forget_env(env_path)
        nodes = list(alive())
        outcomes: dict[str, ReleaseOutcome | str] = {}
        for attempt in range(RELEASE_ATTEMPTS):
            answers = on_nodes(release_task, nodes, (self.root, key), ASK_TIMEOUT)
            outcomes.update(
                (node, a if isinstance(a, ReleaseOutcome) else f"failed: {a}")
                for node, a in answers.items()
            )
            nodes = [n for n, a in answers.items() if not _released(a)]
            if not nodes:
                break
            if attempt + 1 < RELEASE_ATTEMPTS:
                time.sleep(RELEASE_PAUSE)
        with self._guard:
            kept = tuple(f"{n}@{self._addresses.get(n, '?')}" for n in nodes)
            if nodes:
                self._leftovers[env_path] = key
                logger.warning("nodes %s keep %s for now: in use there", ", ".join(kept), key)
            else:
                self._leftovers.pop(env_path, None)
        return kept

    def _release_leftovers(self) -> None:
        """Ask again about copies nodes kept at a delete, until every node let them go."""
        with self._guard:
            leftovers = dict(self._leftovers)
        for env_path, key in leftovers.items():
            answers = on_nodes(release_task, list(alive()), (self.root, key), ASK_TIMEOUT)
            if all(_released(a) for a in answers.values()):
                with self._guard:
                    if self._leftovers.get(env_path) == key and env_path not in self._records:
                        del self._leftovers[env_path]

    def presence(self, env_path: str) -> tuple[NodePresence, ...]:
        """Each known node's state for the env at ``env_path``."""
        with self._guard:
            states = self._states.get(env_path, {})
            result = []
            for node in sorted(self._addresses):
                problem = self._problems.get(node)
                state, error = states.get(node, (ReplicaState.MISSING, problem or None))
                failure = self._retries.failure(env_path, node)
                retry_at = None
                if state is ReplicaState.FAILED and failure is not None:
                    retry_at = time.time() + max(0.0, failure.retry_at - time.monotonic())
                result.append(NodePresence(node, self._addresses[node], state, error, retry_at))
        return tuple(
            attrs.evolve(n, **attrs.asdict(self.proofs.of(env_path, n.node_id))) for n in result
        )

    def reconcile(self) -> int:
        """Ask every servable node what it holds; install what it lacks. Installs started.

        Each node checks its copies (:func:`uv_envs.ray._attest.attest_here`: cheap,
        hashed when that differs); a damaged copy counts as lacking, so its install
        repairs it. Copies nodes kept at a delete (in use then) are released once
        they are free.
        """
        self._release_leftovers()
        with self._guard:
            records = {p: r for p, r in self._records.items() if p not in self._installing}
        nodes = self._admit(alive())
        locks = {path: lock_digest(r.uv_lock) for path, r in records.items()}
        keys = {path: r.key for path, r in records.items()}
        held = on_nodes(attest_here, nodes, (self.root, keys, locks), ASK_TIMEOUT)
        installs = 0
        for node, answer in held.items():
            if isinstance(answer, BaseException):
                continue  # busy or gone: the next round asks again
            for path, check in answer.items():
                present = self.proofs.note(path, node, check)  # damaged: installed again
                with self._guard:
                    states = self._states.setdefault(path, {})
                    known = states.get(node)
                    if present:  # installed here, or by the node's plugin for a worker
                        states[node] = (ReplicaState.PRESENT, None)
                        self._retries.succeeded(path, node)
                        continue
                    if known is not None and known[0] is ReplicaState.FAILED:
                        if not self._retries.due(path, node, time.monotonic()):
                            continue  # failed lately: tried again when its backoff ends
                    else:
                        states[node] = (ReplicaState.MISSING, None)
                installs += 1
                self._install_one(records[path], node)
        return installs

    def _install_one(self, record: PublishedEnv, node: str) -> None:
        answer = on_nodes(install_task, [node], (record,), INSTALL_TIMEOUT)[node]
        self._note(record, node, _install_result(answer))

    def _note(self, record: PublishedEnv, node: str, result: Result) -> None:
        """Keep a node's install result; a failure is scheduled for another try."""
        path = record.env_path
        with self._guard:
            if self._records.get(path) is not record:
                return  # changed or deleted meanwhile: this result is of nothing served
            self._states.setdefault(path, {})[node] = result
            if result[0] is not ReplicaState.FAILED:
                self._retries.succeeded(path, node)
                logger.info("installed %s on node %s", record.key, node)
                return
            failure = self._retries.failed(path, node, result[1] or "", time.monotonic())
        delay = failure.retry_at - time.monotonic()
        logger.warning(
            "node %s could not install %s (failure %d in a row; next try in %.0f s): %s",
            node, record.key, failure.failures, delay, result[1],
        )  # fmt: skip
