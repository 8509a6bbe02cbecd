# ruff: noqa: ANN401 - the overrides pass EnvManager's own arguments through unchanged
"""An EnvManager that serves a Ray cluster: every env it hands out exists on every node.

``uv-envs-server --ray-address`` runs on one of these. Each change resolves
once, here, as on any root; then the env's two project files are published
into the cluster (:mod:`uv_envs.ray._published`) and installed, exactly, on
every alive node under the same root path (:mod:`uv_envs.ray._fanout`), before
the call returns. So the ``env_path`` a client gets, and the ``python_path``
WTB computes from it, are valid on whichever node Ray places a worker.
Delete and cleanup release the env on every node (a lease there keeps that
copy). A watcher thread reconciles every few seconds: nodes that joined get
every env, envs a node lost are installed again, nodes that cannot be served
are reported with the reason.
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
from typing import Any, TypeVar

import attrs
import ray

from uv_envs._errors import InvalidInput, RayNotAvailable, RayPythonMismatch, UvEnvsError
from uv_envs._manager import EnvManager
from uv_envs._models import EnvKey
from uv_envs._relay.server import RelayCounts, WheelRelay
from uv_envs._reports import CleanupReport, DeleteResult, OperationResult, Provisioned
from uv_envs._settings import Settings
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


def _join(address: str | None) -> None:
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


class ClusterEnvManager(EnvManager):
    """:class:`~uv_envs.EnvManager` whose envs are installed on every node of a Ray cluster.

    ``address`` (default ``Settings.ray_address``): ``auto`` or ``HOST:PORT``
    of the cluster's GCS; if this process is connected to Ray already, that
    cluster. Raises :class:`~uv_envs.RayNodeUnusable` naming the node when a
    node cannot hold the root or runs another Python minor than this process.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        address: str | None = None,
        reconcile_interval: float = RECONCILE_INTERVAL,
        wheel_relay: bool = True,
        **core: Any,
    ) -> None:
        settings = settings if settings is not None else Settings.from_env()
        _join(address or settings.ray_address)
        self._relay: WheelRelay | None = None
        if wheel_relay:
            # Started before the core, so the server's own installs download through it
            # too: the index then serves each file once for the whole cluster.
            relay = WheelRelay(Layout(settings.root).relay_dir, node_address())
            try:
                settings = attrs.evolve(settings, wheel_relay=relay.start())
                self._relay = relay
            except OSError as exc:
                logger.warning("no wheel relay (%s): every node fetches from the index", exc)
        try:
            super().__init__(settings, **core)
        except BaseException:
            self._stop_relay()
            raise
        try:
            self._fanout = self._connect()
            # Locks per key stripe, not per key: a fixed set, whatever the number of envs.
            self._stripes = [threading.RLock() for _ in range(_STRIPES)]
            self._publish_existing()
        except BaseException:
            super().close()
            self._stop_relay()
            raise
        self._stop = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, args=(reconcile_interval,), name="uv-envs-cluster", daemon=True
        )
        self._watcher.start()

    def _connect(self) -> Fanout:
        minor = minor_of(platform.python_version())
        fanout = Fanout(str(self.settings.root), driver_registry(), minor)
        fanout.check()  # what cannot work is refused now, naming the node
        return fanout

    def _publish_existing(self) -> None:
        """Publish the envs the root holds already (a restart); the watcher installs them."""
        for environment in self.list_environments():
            try:
                self._fanout.publish(self._record(environment.key))
            except (OSError, UvEnvsError) as exc:
                logger.warning("not serving %s to the cluster: %s", environment.key, exc)

    def _watch(self, interval: float) -> None:
        pruned = time.monotonic()
        while not self._stop.wait(interval):
            try:
                self._fanout.reconcile()
                if self._relay is not None and time.monotonic() - pruned > RELAY_PRUNE_INTERVAL:
                    pruned = time.monotonic()
                    self._relay.prune()
            except Exception:
                logger.exception("reconciling the cluster failed; trying again")

    # -- what the servers show ---------------------------------------------------------

    def nodes(self, key: EnvKey) -> tuple[NodePresence, ...]:
        """Which alive nodes hold the env of ``key`` (at the server's lock), and which lack it."""
        return self._fanout.presence(str(Layout(self.settings.root).env_dir(key)))

    def cluster_nodes(self) -> tuple[ClusterNode, ...]:
        """Every alive node, with why it cannot be served where it cannot."""
        return self._fanout.nodes()

    def reconcile(self) -> int:
        """One watcher round now: install on every node what it lacks; installs started."""
        return self._fanout.reconcile()

    # -- changes: here, then on every node ----------------------------------------------

    def _record(self, key: EnvKey) -> PublishedEnv:
        environment = self.get(key)
        export = self.export(key)
        return PublishedEnv(
            workflow_id=key.workflow_id,
            node_id=key.node_id,
            version_id=key.version_id,
            root=str(self.settings.root),
            env_path=str(environment.env_path),
            pyproject_toml=export.pyproject_toml,
            uv_lock=export.uv_lock,
            wheel_relay=self.settings.wheel_relay,
        )

    @contextmanager
    def _serialized(self, key: EnvKey) -> Iterator[None]:
        """One change (or delete) of ``key`` and its fan-out at a time in this server."""
        with self._stripes[zlib.crc32(str(key).encode()) % _STRIPES]:
            yield

    def _replicated(self, key: EnvKey, change: Callable[[], _T]) -> _T:
        with self._serialized(key):
            result = change()
            record = self._record(key)
            try:
                self._fanout.install(record)
            except Exception:
                # The change is made and answered; the record is published, so the plugin
                # and the next reconciling round bring the nodes to it once Ray answers again.
                logger.exception("could not reach the cluster's nodes for %s", key)
            return result

    def _check_python(self, python: str | None) -> None:
        request = normalize_python_request(python or self.settings.default_python)
        if minor_of(request) != self._fanout.python_minor:
            nodes = ", ".join(n.node_id for n in self._fanout.nodes())
            raise RayPythonMismatch(
                f"Python {request} cannot run on this cluster: its nodes ({nodes}) run Ray on "
                f"Python {self._fanout.python_minor}"
            )

    def create(self, key: EnvKey, **spec: Any) -> Any:
        self._check_python(spec.get("python"))
        return self._replicated(key, lambda: super(ClusterEnvManager, self).create(key, **spec))

    def ensure(self, key: EnvKey, **spec: Any) -> Any:
        self._check_python(spec.get("python"))
        return self._replicated(key, lambda: super(ClusterEnvManager, self).ensure(key, **spec))

    def provision(self, key: EnvKey, **spec: Any) -> Provisioned:
        self._check_python(spec.get("python"))
        return self._replicated(key, lambda: super(ClusterEnvManager, self).provision(key, **spec))

    def add(self, key: EnvKey, *args: Any, **kwargs: Any) -> OperationResult:
        return self._replicated(
            key, lambda: super(ClusterEnvManager, self).add(key, *args, **kwargs)
        )

    def update(self, key: EnvKey, *args: Any, **kwargs: Any) -> OperationResult:
        return self._replicated(
            key, lambda: super(ClusterEnvManager, self).update(key, *args, **kwargs)
        )

    def remove(self, key: EnvKey, *args: Any, **kwargs: Any) -> OperationResult:
        return self._replicated(
            key, lambda: super(ClusterEnvManager, self).remove(key, *args, **kwargs)
        )

    def sync(self, key: EnvKey) -> OperationResult:
        return self._replicated(key, lambda: super(ClusterEnvManager, self).sync(key))

    def adopt(self, key: EnvKey, **files: Any) -> OperationResult:
        return self._replicated(key, lambda: super(ClusterEnvManager, self).adopt(key, **files))

    # -- removals: here, then on every node ---------------------------------------------

    def delete(self, key: EnvKey, **options: Any) -> DeleteResult:
        with self._serialized(key):
            env_path = str(self.status(key).env_path)
            result = super().delete(key, **options)
            self._release(key, env_path)
            return result

    def cleanup(self, *args: Any, **kwargs: Any) -> CleanupReport:
        report = super().cleanup(*args, **kwargs)
        for key in report.deleted:
            with self._serialized(key):
                status = self.status(key)
                if status.environment is None:  # not made again since: release it everywhere
                    self._release(key, str(status.env_path))
        return report

    def _release(self, key: EnvKey, env_path: str) -> None:
        try:
            self._fanout.release(key, env_path)
        except Exception:
            # Deleted here; a node that kept a copy serves nothing: no record names it.
            logger.exception("could not release %s on the cluster's nodes", key)

    def close(self) -> None:
        """Stop the watcher, then close the root (the Ray connection stays to its owner)."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
            self._watcher.join(timeout=30)
        super().close()
        self._stop_relay()

    def _stop_relay(self) -> None:
        relay = getattr(self, "_relay", None)
        if relay is not None:
            relay.stop()
            self._relay = None

    def relay_counts(self) -> RelayCounts | None:
        """What the wheel relay fetched from the index and served to nodes (None: no relay)."""
        return None if self._relay is None else self._relay.counts()
