"""The cluster side of a served root: the fan-out collaborator of :class:`ClusterEnvManager`.

It joins the cluster, runs the wheel relay, checks every node, installs each
changed env on every alive node (:mod:`uv_envs.ray._fanout`) and releases
deleted ones, one change of a key at a time, and runs the watcher that
reconciles every few seconds. It is the manager's ``cluster``
(:class:`uv_envs.ClusterView`): what both servers show of the cluster.
"""

from __future__ import annotations

import logging
import platform
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import ray

from uv_envs._errors import InvalidInput, RayNotAvailable, RayPythonMismatch
from uv_envs._models import EnvKey
from uv_envs._relay.server import RelayCounts, WheelRelay
from uv_envs._store.layout import Layout
from uv_envs._uv.raylink import minor_of
from uv_envs._validation import normalize_python_request

from ._fanout import ClusterNode, Fanout, NodePresence
from ._published import PublishedEnv, driver_registry

logger = logging.getLogger("uv_envs.ray")

#: Seconds between two rounds of the watcher (joins, lost envs).
RECONCILE_INTERVAL = 5.0
#: Seconds between two prunings of the wheel relay's files.
RELAY_PRUNE_INTERVAL = 3600.0
_STRIPES = 64
#: Seconds to wait for the cluster's GCS to accept a connection at start.
CONNECT_TIMEOUT = 10.0
_T = TypeVar("_T")


def _check_reachable(address: str) -> None:
    """Fail fast for a HOST:PORT nothing listens on: ``ray.init`` would wait for it for minutes."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInput(f"the Ray address must be auto or HOST:PORT, not {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
    except OSError as exc:
        raise RayNotAvailable(f"no Ray cluster answers at {address}: {exc}") from exc


def join(address: str | None) -> None:
    """Connect this process to the cluster at ``address`` unless it is connected already."""
    if ray.is_initialized():
        return
    if not address:
        raise InvalidInput("give the Ray cluster's address (auto or HOST:PORT)")
    _check_reachable(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise RayNotAvailable(f"cannot join the Ray cluster at {address}: {exc}") from exc


def node_address() -> str:
    """The address of this process's node: where the cluster's nodes reach the relay."""
    return str(ray.util.get_node_ip_address())  # type: ignore[no-untyped-call]


def start_relay(root: str) -> tuple[WheelRelay, str] | None:
    """The wheel relay of ``root`` on this node and its URL; None (logged) if it cannot start."""
    relay = WheelRelay(Layout(Path(root)).relay_dir, node_address())
    try:
        url = relay.start()
    except OSError as exc:
        logger.warning("no wheel relay (%s): every node fetches from the index", exc)
        return None
    return relay, url


class ClusterService:
    """Every served env on every alive node, for the root at ``root`` (see the module)."""

    def __init__(self, root: str, relay: WheelRelay | None) -> None:
        self.root = root
        self.relay = relay
        self.fanout = Fanout(root, driver_registry(), minor_of(platform.python_version()))
        self.fanout.check()  # what cannot work is refused now, naming the node
        # Locks per key stripe, not per key: a fixed set, whatever the number of envs.
        self._stripes = [threading.RLock() for _ in range(_STRIPES)]
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def watch(self, interval: float) -> None:
        """Start the watcher: a reconciling round every ``interval`` seconds until :meth:`close`."""
        self._watcher = threading.Thread(
            target=self._watch, args=(interval,), name="uv-envs-cluster", daemon=True
        )
        self._watcher.start()

    def _watch(self, interval: float) -> None:
        pruned = time.monotonic()
        while not self._stop.wait(interval):
            try:
                self.fanout.reconcile()
                if self.relay is not None and time.monotonic() - pruned > RELAY_PRUNE_INTERVAL:
                    pruned = time.monotonic()
                    self.relay.prune()
            except Exception:
                logger.exception("reconciling the cluster failed; trying again")

    # -- what the servers show (ClusterView) -------------------------------------------

    def nodes(self, key: EnvKey) -> tuple[NodePresence, ...]:
        """Which alive nodes hold the env of ``key`` (at the server's lock), and which lack it."""
        return self.fanout.presence(str(Layout(Path(self.root)).env_dir(key)))

    def cluster_nodes(self) -> tuple[ClusterNode, ...]:
        """Every alive node, with why it cannot be served where it cannot."""
        return self.fanout.nodes()

    def relay_counts(self) -> RelayCounts | None:
        """What the wheel relay fetched from the index and served to nodes (None: no relay)."""
        return None if self.relay is None else self.relay.counts()

    # -- changes -----------------------------------------------------------------------

    def check_python(self, request: str) -> None:
        """Refuse a Python request no node's Ray runs, before anything is built."""
        request = normalize_python_request(request)
        if minor_of(request) != self.fanout.python_minor:
            nodes = ", ".join(n.node_id for n in self.fanout.nodes())
            raise RayPythonMismatch(
                f"Python {request} cannot run on this cluster: its nodes ({nodes}) run Ray on "
                f"Python {self.fanout.python_minor}"
            )

    @contextmanager
    def serialized(self, key: EnvKey) -> Iterator[None]:
        """One change (or delete) of ``key`` and its fan-out at a time in this server."""
        with self._stripes[zlib.crc32(str(key).encode()) % _STRIPES]:
            yield

    def replicated(
        self, key: EnvKey, change: Callable[[], _T], record: Callable[[], PublishedEnv]
    ) -> _T:
        """Make the change here, then install its result on every node; the change's answer."""
        with self.serialized(key):
            result = change()
            published = record()
            try:
                self.fanout.install(published)
            except Exception:
                # The change is made and answered; the record is published, so the plugin
                # and the next reconciling round bring the nodes to it once Ray answers again.
                logger.exception("could not reach the cluster's nodes for %s", key)
            return result

    def release(self, key: EnvKey, env_path: str) -> None:
        """Release the env on every node (a copy in use there stays until it is free)."""
        try:
            self.fanout.release(key, env_path)
        except Exception:
            # Deleted here; a node that kept a copy serves nothing: no record names it.
            logger.exception("could not release %s on the cluster's nodes", key)

    def close(self) -> None:
        """Stop the watcher and the relay (the Ray connection stays to its owner)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=30)
        self.stop_relay()

    def stop_relay(self) -> None:
        """Stop the wheel relay, if it runs."""
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
