"""Wiring: one EnvManager, one thread pool, the service, health and reflection."""

from __future__ import annotations

import logging
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc

import uv_envs

from ._proto import SERVICE_NAME
from ._servicer import EnvManagerServicer, method_handlers
from ._stdservices import HEALTH_SERVICE, HealthServicer, reflection_handlers

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Mapping, Sequence

logger = logging.getLogger("uv_envs_server")

#: Worker threads by default: enough for several slow creates while status calls go on.
DEFAULT_WORKERS = 16

#: Messages up to this size are accepted (uv.lock files of large envs can be big).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Fail loudly when the port is taken instead of sharing it with another server.
    ("grpc.so_reuseport", 0),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
)


class EnvManagerServer(grpc.Server):
    """A ``grpc.Server`` serving uv-envs, whose :meth:`stop` drains health first.

    Made by :func:`create_server`. ``manager``, ``health`` and ``executor`` are
    the parts it was built from.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        server: grpc.Server,
        *,
        manager: uv_envs.EnvManager,
        health: HealthServicer,
        executor: futures.ThreadPoolExecutor,
    ) -> None:
        self._server = server
        self.manager = manager
        self.health = health
        self.executor = executor

    def add_generic_rpc_handlers(
        self, generic_rpc_handlers: Iterable[grpc.GenericRpcHandler]
    ) -> None:
        """Serve more handlers (before :meth:`start`)."""
        self._server.add_generic_rpc_handlers(generic_rpc_handlers)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        """Serve more methods of a registered service (grpcio >= 1.63)."""
        self._server.add_registered_method_handlers(service_name, method_handlers)

    def add_insecure_port(self, address: str) -> int:
        """Listen on one more address; returns the port."""
        return self._server.add_insecure_port(address)

    def add_secure_port(self, address: str, server_credentials: grpc.ServerCredentials) -> int:
        """Listen on one more address with TLS; returns the port."""
        return self._server.add_secure_port(address, server_credentials)

    def start(self) -> None:
        """Start serving."""
        self._server.start()

    def stop(self, grace: float | None) -> threading.Event:
        """Report NOT_SERVING, refuse new RPCs, let running ones finish for ``grace`` seconds."""
        self.health.shutdown()
        return self._server.stop(grace)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stops, or ``timeout`` passes (then returns True)."""
        return self._server.wait_for_termination(timeout)


def create_server(
    address: str = "127.0.0.1:0",
    *,
    manager: uv_envs.EnvManager | None = None,
    settings: uv_envs.Settings | None = None,
    max_workers: int = DEFAULT_WORKERS,
    options: Sequence[tuple[str, Any]] = (),
) -> tuple[EnvManagerServer, int]:
    """Build a server for ``envmanager.EnvManagerService``, bound but not started.

    Args:
        address: ``host:port`` to listen on; port 0 picks a free port. Loopback
            by default: the service has no authentication of its own.
        manager: the core manager to serve; by default a new one on ``settings``.
        settings: settings for that new manager (ignored when ``manager`` is given).
        max_workers: threads answering RPCs. Each running create, add or sync
            holds one; the others go on answering status calls.
        options: extra gRPC channel options, after the defaults.

    Returns:
        The server (call ``start()``) and the port it is bound to.

    Raises:
        OSError: the address could not be bound.

    .. versionadded:: 0.1.0

    """
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, not {max_workers}")
    if manager is None:
        manager = uv_envs.EnvManager(settings)
    executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="uv-envs-rpc")
    server = grpc.server(executor, options=[*_OPTIONS, *options])
    # A quarter of the workers at most may sit in health Watch streams.
    health = HealthServicer(max_watchers=max(1, max_workers // 4))
    server.add_generic_rpc_handlers(
        [
            method_handlers(EnvManagerServicer(manager)),
            health.handler(),
            *reflection_handlers([SERVICE_NAME, HEALTH_SERVICE]),
        ]
    )
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpcio >= 1.64 raises; older versions return 0
        port = 0
        cause: BaseException | None = exc
    else:
        cause = None
    if port == 0:
        executor.shutdown(wait=False)
        raise OSError(f"could not listen on {address}") from cause
    logger.debug("bound %s (port %d) with %d workers", address, port, max_workers)
    return EnvManagerServer(server, manager=manager, health=health, executor=executor), port
