"""A manager that serves a Ray cluster: every env it hands out exists on every node.

``uv-envs-server --ray-address`` runs on one of these. Each change resolves
once, here, as on any root; then the env's two project files are published
into the cluster (:mod:`uv_envs.ray._published`) and installed, exactly, on
every alive node under the same root path (:mod:`uv_envs.ray._fanout`), before
the call returns. So the ``env_path`` a client gets, and the ``python_path``
WTB computes from it, are valid on whichever node Ray places a worker.
Delete and cleanup release the env on every node (a lease there keeps that
copy).

It is a plain :class:`~uv_envs.EnvManager`, composed rather than subclassed:
the cluster side is one collaborator, :class:`~uv_envs.ray._service.ClusterService`,
given to the manager as its ``replication`` port (the core calls it after each
change, delete and cleanup, under that key's stripe) and set as its
``cluster`` (:class:`uv_envs.ClusterView`), what the servers show. Its watcher
reconciles every few seconds: nodes that joined get every env, envs a node
lost are installed again, nodes that cannot be served are reported with the
reason.
"""

from __future__ import annotations

import logging

import attrs

from uv_envs._audit.log import AuditLog
from uv_envs._bytecode.compiler import BytecodeCompiler
from uv_envs._errors import UvEnvsError
from uv_envs._events.domain import EventPublisher
from uv_envs._manager import EnvManager
from uv_envs._procs.scan import ProcessScanner
from uv_envs._settings import Settings
from uv_envs._uv.executor import UvExecutor
from uv_envs._uv.python import InterpreterFinder

from ._service import RECONCILE_INTERVAL, ClusterService, join, start_relay

logger = logging.getLogger("uv_envs.ray")


def ClusterEnvManager(  # noqa: N802, PLR0913 - named as the class callers built before; EnvManager's adapters and the cluster's three options
    settings: Settings | None = None,
    *,
    address: str | None = None,
    reconcile_interval: float = RECONCILE_INTERVAL,
    wheel_relay: bool = True,
    executor: UvExecutor | None = None,
    audit: AuditLog | None = None,
    publish: EventPublisher | None = None,
    python_finder: InterpreterFinder | None = None,
    compiler: BytecodeCompiler | None = None,
    processes: ProcessScanner | None = None,
) -> EnvManager:
    """An :class:`~uv_envs.EnvManager` whose envs are installed on every node of a Ray cluster.

    ``address`` (default ``Settings.ray_address``): ``auto`` or ``HOST:PORT``
    of the cluster's GCS; if this process is connected to Ray already, that
    cluster. Raises :class:`~uv_envs.RayNodeUnusable` naming the node when a
    node cannot hold the root or runs another Python minor than this process.
    The other keywords are :class:`~uv_envs.EnvManager`'s. The manager's
    ``cluster`` is the cluster side (``nodes``, ``cluster_nodes``,
    ``relay_counts``, ``reconcile``); ``close()`` stops it.
    """
    settings = settings if settings is not None else Settings.from_env()
    address = address or settings.ray_address
    join(address)
    # Started before the core, so the server's own installs download through it
    # too: the index then serves each file once for the whole cluster.
    started = start_relay(settings) if wheel_relay else None
    relay = None
    if started is not None:
        relay, url = started
        settings = attrs.evolve(settings, wheel_relay=url)
    try:
        service = ClusterService(settings, relay, address)  # owns the relay from here
        manager = EnvManager(
            settings,
            executor=executor,
            audit=audit,
            publish=publish,
            python_finder=python_finder,
            compiler=compiler,
            processes=processes,
            replication=service,
        )
    except BaseException:
        if relay is not None:
            relay.stop()
        raise
    try:
        service.check()  # what cannot work is refused now, naming the node
        _publish_existing(manager, service)
    except BaseException:
        manager.close()  # stops the relay too
        raise
    manager.cluster = service
    service.watch(reconcile_interval)
    return manager


def _publish_existing(manager: EnvManager, service: ClusterService) -> None:
    """Publish the envs the root holds already (a restart); the watcher installs them."""
    for environment in manager.list_environments():
        key = environment.key
        try:
            service.fanout.publish(service.record(manager.get(key), manager.export(key)))
        except (OSError, UvEnvsError) as exc:
            logger.warning("not serving %s to the cluster: %s", key, exc)
