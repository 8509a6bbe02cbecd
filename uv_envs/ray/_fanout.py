"""A server's view of its cluster: every served env on every alive node, and who has what.

One pinned task per node (:mod:`uv_envs.ray._tasks`) runs the node's side
(:mod:`uv_envs.ray._replica`, installing through :mod:`uv_envs.ray._install`). The
table of which node holds which env at which lock is kept here, in memory,
from the answers of those tasks; :meth:`Fanout.reconcile` refreshes it from
the nodes themselves, installs what a node lacks (it joined late, or lost the
env), and notes the nodes that cannot be served and why.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import attrs
import ray

from uv_envs._errors import RayNodeUnusable, RayNotAvailable
from uv_envs._models import EnvKey

from ._attest import attest_here
from ._install import ReleaseOutcome, node_manager, release
from ._proofs import Proofs
from ._published import PublishedEnv, Registry
from ._replica import (
    NodeFacts,
    ReplicaState,
    check_python,
    install_replica,
    lock_digest,
    node_facts,
)
from ._tasks import alive, on_nodes

logger = logging.getLogger("uv_envs.ray")

#: Seconds a node may take to install one env.
INSTALL_TIMEOUT = 1800.0
#: Seconds a node may take to answer a quick question (its facts, what it holds).
ASK_TIMEOUT = 120.0
#: A delete asks a node that keeps its copy (in use) this many times, this far apart.
RELEASE_ATTEMPTS = 4
RELEASE_PAUSE = 2.0
#: Seconds a node waits for an env's lock before it reports its copy kept.
RELEASE_LOCK_TIMEOUT = 10.0


def _install_result(answer: Any) -> tuple[ReplicaState, str | None]:  # noqa: ANN401 - a task's answer
    """A node's install answer; a task that raised (node gone, timeout) is a failure there."""
    if isinstance(answer, BaseException):
        return ReplicaState.FAILED, f"{type(answer).__name__}: {answer}"
    result: tuple[ReplicaState, str | None] = answer
    return result


def _released(answer: object) -> bool:
    return answer in (ReleaseOutcome.RELEASED, ReleaseOutcome.ABSENT)


@attrs.frozen
class NodePresence:
    """Whether one node holds one served env."""

    node_id: str
    address: str
    state: ReplicaState
    error: str | None = None
    #: the digest of the node's copy at its last check, when (epoch seconds), and whether
    #: it is the server's (None: not known yet); see :mod:`uv_envs.ray._proofs`
    digest: str | None = None
    checked_at: float | None = None
    digest_matches: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for the servers' answers."""
        return {
            "node_id": self.node_id,
            "address": self.address,
            "state": str(self.state),
            "error": self.error,
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
            "checked_at": self.checked_at,
            "digest_differs": list(self.digest_differs),
        }


def _facts_task(root: str) -> NodeFacts:
    return node_facts(root, ray.get_runtime_context().get_node_id(), "")


def _install_task(record: PublishedEnv) -> tuple[ReplicaState, str | None]:
    return install_replica(record, ray.get_runtime_context().get_node_id())


def _release_task(root: str, key: EnvKey) -> ReleaseOutcome:
    """Delete this node's copy of ``key`` unless a process there uses or leases it; prune."""
    with contextlib.closing(node_manager(root)) as manager:
        return release(manager, key, timeout=RELEASE_LOCK_TIMEOUT)[0]


class Fanout:
    """The served envs of one root across the alive nodes of the connected cluster."""

    def __init__(self, root: str, registry: Registry, python_minor: str) -> None:
        self.root = root
        self.registry = registry
        self.python_minor = python_minor
        self._guard = threading.Lock()
        #: env path -> node id -> (state, error)
        self._states: dict[str, dict[str, tuple[ReplicaState, str | None]]] = {}
        #: node id -> why it cannot be served ("" when it can)
        self._problems: dict[str, str] = {}
        self._addresses: dict[str, str] = {}
        self._plugins: dict[str, bool] = {}
        #: env path -> what every node must hold there
        self._records: dict[str, PublishedEnv] = {}
        #: env paths a change is installing on every node right now
        self._installing: set[str] = set()
        #: env path -> key of deleted envs some node kept a copy of (in use there)
        self._leftovers: dict[str, EnvKey] = {}
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
        answers = on_nodes(_facts_task, list(nodes), (self.root,), ASK_TIMEOUT)
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
        check_python(facts, self.python_minor)
        with self._guard:
            self._addresses.update(nodes)
            self._problems.update(dict.fromkeys(nodes, ""))
            self._plugins.update({f.node_id: f.plugin for f in facts})
        return dict.fromkeys(nodes, "")

    def nodes(self) -> tuple[ClusterNode, ...]:
        """Every node seen alive at the last look, with why it is not served, if it is not."""
        with self._guard:
            nodes = [
                (node, self._addresses[node], self._problems.get(node), self._plugins.get(node))
                for node in sorted(self._addresses)
            ]
        return tuple(
            ClusterNode(
                node,
                address,
                problem or None,
                plugin=bool(plugin),
                checked_at=self.proofs.of_node(node)[0],
                digest_differs=self.proofs.of_node(node)[1],
            )
            for node, address, problem, plugin in nodes
        )

    def _admit(self, nodes: dict[str, str]) -> list[str]:
        """The alive nodes that can be served; new ones are asked first, bad ones noted."""
        with self._guard:
            gone = set(self._addresses) - set(nodes)
            for node in gone:
                del self._addresses[node]
                self._problems.pop(node, None)
                self._plugins.pop(node, None)
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

    def install(self, record: PublishedEnv) -> dict[str, tuple[ReplicaState, str | None]]:
        """Publish the record and install it on every servable node; node id -> result."""
        with self._guard:
            self._states.pop(record.env_path, None)  # a new lock: nothing is known of it yet
            self._installing.add(record.env_path)  # the reconciling round leaves it to us
        try:
            self.publish(record)
            nodes = self._admit(alive())
            answers = on_nodes(_install_task, nodes, (record,), INSTALL_TIMEOUT)
        finally:
            with self._guard:
                self._installing.discard(record.env_path)
        results = {node: _install_result(answer) for node, answer in answers.items()}
        for node, (state, error) in results.items():
            if state is ReplicaState.FAILED:
                logger.warning("node %s could not install %s: %s", node, record.key, error)
        with self._guard:
            self._states[record.env_path] = dict(results)
        return results

    def release(self, key: EnvKey, env_path: str) -> dict[str, ReleaseOutcome | str]:
        """Withdraw the env and delete it on every alive node.

        A copy a process on its node still uses or leases stays; it is asked
        again a few times at once (a killed worker exits a moment later), then
        at every reconciling round until it goes.
        """
        self.registry.withdraw(env_path)
        self.proofs.forget(env_path)
        with self._guard:
            self._states.pop(env_path, None)
            self._records.pop(env_path, None)
        nodes = list(alive())
        outcomes: dict[str, ReleaseOutcome | str] = {}
        for attempt in range(RELEASE_ATTEMPTS):
            answers = on_nodes(_release_task, nodes, (self.root, key), ASK_TIMEOUT)
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
            if nodes:
                self._leftovers[env_path] = key
                logger.warning("nodes %s keep %s for now: in use there", ", ".join(nodes), key)
            else:
                self._leftovers.pop(env_path, None)
        return outcomes

    def _release_leftovers(self) -> None:
        """Ask again about copies nodes kept at a delete, until every node let them go."""
        with self._guard:
            leftovers = dict(self._leftovers)
        for env_path, key in leftovers.items():
            answers = on_nodes(_release_task, list(alive()), (self.root, key), ASK_TIMEOUT)
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
                result.append(NodePresence(node, self._addresses[node], state, error))
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
                    if present:
                        states[node] = (ReplicaState.PRESENT, None)
                        continue
                    if known is not None and known[0] is ReplicaState.FAILED:
                        continue  # failed once for this lock: not retried every round
                    states[node] = (ReplicaState.MISSING, None)
                installs += 1
                self._install_one(records[path], node)
        return installs

    def _install_one(self, record: PublishedEnv, node: str) -> None:
        answer = on_nodes(_install_task, [node], (record,), INSTALL_TIMEOUT)[node]
        result = _install_result(answer)
        if result[0] is ReplicaState.FAILED:
            logger.warning("node %s could not install %s: %s", node, record.key, result[1])
        else:
            logger.info("installed %s on node %s", record.key, node)
        with self._guard:
            self._states.setdefault(record.env_path, {})[node] = result
