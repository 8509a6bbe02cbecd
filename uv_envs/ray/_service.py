"""The cluster side of a served root: the fan-out collaborator :func:`ClusterEnvManager` wires.

It joins the cluster, runs the wheel relay, checks every node, installs each
changed env on every alive node (:mod:`uv_envs.ray._fanout`) and releases
deleted ones, and runs the watcher that reconciles every few seconds. It is
the manager's replication (the core calls it after each change, under that
key's stripe: one change of a key and its fan-out at a time) and its
``cluster`` (:class:`uv_envs.ClusterView`): what both servers show of the cluster.
"""

from __future__ import annotations

import logging
import platform
import socket
import threading
import time
from pathlib import Path

import ray

from uv_envs._errors import InvalidInput, RayNotAvailable, RayPythonMismatch
from uv_envs._models import Environment, EnvKey
from uv_envs._relay.origins import AllowedOrigins
from uv_envs._relay.server import RelayCounts, WheelRelay
from uv_envs._relay.urls import lock_origins
from uv_envs._reports import Export
from uv_envs._settings import Settings
from uv_envs._store.layout import Layout
from uv_envs._uv.raylink import minor_of
from uv_envs._validation import normalize_python_request

from ._fanout import Fanout
from ._link import ClusterLink, LinkState
from ._published import PublishedEnv, driver_registry
from ._views import ClusterNode, NodePresence

logger = logging.getLogger("uv_envs.ray")

#: Seconds between two rounds of the watcher (joins, lost envs).
RECONCILE_INTERVAL = 5.0
#: Seconds between two prunings of the wheel relay's files.
RELAY_PRUNE_INTERVAL = 3600.0
#: Seconds to wait for the cluster's GCS to accept a connection at start.
CONNECT_TIMEOUT = 10.0


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


def start_relay(settings: Settings) -> tuple[WheelRelay, str] | None:
    """The wheel relay of ``settings``' root on this node and its URL; None (logged) if it fails.

    It fetches from the root's indexes, and from the origins of each lock the
    service publishes (:meth:`ClusterService.record`).
    """
    relay = WheelRelay(
        Layout(settings.root).relay_dir, node_address(), origins=AllowedOrigins.of(settings.index)
    )
    try:
        url = relay.start()
    except OSError as exc:
        logger.warning("no wheel relay (%s): every node fetches from the index", exc)
        return None
    return relay, url


class ClusterService:
    """Every served env on every alive node, for the root of ``settings`` (see the module).

    It owns ``relay`` (stopped by :meth:`close`); ``settings.wheel_relay`` is
    the URL the nodes download through. ``address`` names the cluster in
    messages (default: its GCS address as Ray gives it).
    """

    def __init__(
        self, settings: Settings, relay: WheelRelay | None, address: str | None = None
    ) -> None:
        self.root = str(settings.root)
        self.relay = relay
        self.relay_url = settings.wheel_relay
        registry = driver_registry()
        self.fanout = Fanout(self.root, registry, minor_of(platform.python_version()))
        # The address as given, which the operator knows (Ray may show another for it).
        address = address or str(ray.get_runtime_context().gcs_address)
        self.link = ClusterLink(address, registry.kv, self._link_changed)
        self._stop = threading.Event()
        #: wakes the watcher before its interval ends (the head came back)
        self._wake = threading.Event()
        #: the head came back: the records go into the cluster again before the next round
        self._republish = threading.Event()
        self._threads: list[threading.Thread] = []

    def check(self) -> None:
        """Ask every alive node; raise :class:`~uv_envs.RayNodeUnusable` naming one unusable."""
        self.fanout.check()

    def watch(self, interval: float) -> None:
        """Start the watcher (a reconciling round every ``interval`` seconds) and the link's probe.

        Both run until :meth:`close`.
        """
        self._threads = [
            threading.Thread(
                target=self._watch, args=(interval,), name="uv-envs-cluster", daemon=True
            ),
            threading.Thread(
                target=self.link.run, args=(self._stop,), name="uv-envs-cluster-link", daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()

    def _link_changed(self, old: LinkState, new: LinkState) -> None:
        if new is LinkState.UP and old is LinkState.DOWN:  # the same cluster: its GCS restarted
            self._republish.set()
            self._wake.set()

    def _watch(self, interval: float) -> None:
        pruned = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            # Nothing goes to Ray while its head is away: each call would wait out its timeout.
            if self._stop.is_set() or self.link.state is not LinkState.UP:
                continue
            try:
                if self._republish.is_set():
                    self._republish.clear()
                    self.fanout.republish()
                    logger.info("the Ray cluster is back: records published again")
                self.fanout.reconcile()
                if self.relay is not None and time.monotonic() - pruned > RELAY_PRUNE_INTERVAL:
                    pruned = time.monotonic()
                    self.relay.prune()
            except Exception:
                if self.link.unavailable() is not None:
                    self._republish.set()  # the head went away meanwhile: all again once back
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

    def reconcile(self) -> int:
        """One watcher round now: install on every node what it lacks; installs started."""
        self.link.require()
        return self.fanout.reconcile()

    def unavailable(self) -> str | None:
        """Why the cluster cannot be used now (its head is away); None while it answers."""
        return self.link.unavailable()

    def needs_restart(self) -> bool:
        """Whether a new cluster answers at the address: only a new process can join it."""
        return self.link.state is LinkState.REPLACED

    # -- changes (the manager's replication) ------------------------------------------

    def record(self, environment: Environment, project: Export) -> PublishedEnv:
        """What every node must hold for the env: its path and project, the relay's URL."""
        key = environment.key
        if self.relay is not None:  # the nodes' uv downloads these files through it
            self.relay.origins.add(lock_origins(project.uv_lock))
        return PublishedEnv(
            workflow_id=key.workflow_id,
            node_id=key.node_id,
            version_id=key.version_id,
            root=self.root,
            env_path=str(environment.env_path),
            pyproject_toml=project.pyproject_toml,
            uv_lock=project.uv_lock,
            wheel_relay=self.relay_url,
            digest=environment.digest,
        )

    def check_python(self, request: str) -> None:
        """Refuse a Python request no node's Ray runs, and any while the head is away.

        Called before anything is built, so a create fails at once with
        :class:`~uv_envs.RayClusterUnavailable` naming the cluster.
        """
        self.link.require()
        request = normalize_python_request(request)
        if minor_of(request) != self.fanout.python_minor:
            nodes = ", ".join(n.node_id for n in self.fanout.nodes())
            raise RayPythonMismatch(
                f"Python {request} cannot run on this cluster: its nodes ({nodes}) run Ray on "
                f"Python {self.fanout.python_minor}"
            )

    def changed(self, environment: Environment, project: Export) -> None:
        """Install the env as it is here on every node (the core holds the key's stripe)."""
        published = self.record(environment, project)
        if self.link.state is not LinkState.UP:
            self.fanout.keep(published)  # published and installed once the head is back
            logger.warning("%s changed while the Ray cluster is away", environment.key)
            return
        try:
            self.fanout.install(published)
        except Exception:
            # The change is made and answered; the record is published, so the plugin
            # and the next reconciling round bring the nodes to it once Ray answers again.
            logger.exception("could not reach the cluster's nodes for %s", environment.key)

    def deleted(self, key: EnvKey, env_path: Path) -> tuple[str, ...]:
        """Release the env on every node; the nodes that keep a copy for now (in use there).

        Each is ``node_id@address``; its copy goes once it is free (see :class:`Fanout`).
        """
        if self.link.state is not LinkState.UP:
            self.fanout.drop(key, str(env_path))  # withdrawn and released once the head is back
            return ()
        try:
            return self.fanout.release(key, str(env_path))
        except Exception:
            # Deleted here; a node that kept a copy serves nothing: no record names it.
            logger.exception("could not release %s on the cluster's nodes", key)
            return ()

    def close(self) -> None:
        """Stop the watcher, the probe and the relay (the Ray connection stays to its owner)."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.stop_relay()

    def stop_relay(self) -> None:
        """Stop the wheel relay, if it runs."""
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
