"""Wiring: one EnvManager, one thread pool, the service, health and reflection.

Also the server's guards: loopback unless ``allow_remote``, optional TLS, an
optional bearer token, a request size limit, request ids in the log.
"""

from __future__ import annotations

import logging
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2_grpc

import uv_envs
from uv_envs_server._limits import (
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PACKAGES,
    DEFAULT_MIN_CLEANUP_IDLE_HOURS,
    DEFAULT_WORKERS,
)
from uv_envs_server._security import check_address, check_token, server_credentials

from .health import HEALTH_SERVICE, HealthServicer
from .interceptors import RequestLogInterceptor, TokenInterceptor
from .proto import SERVICE_NAME
from .reflection import reflection_handlers
from .servicer import EnvManagerServicer, method_handlers

if TYPE_CHECKING:
    import threading
    from collections.abc import Iterable, Mapping, Sequence

logger = logging.getLogger("uv_envs_server")

#: Responses (and what clients accept) up to this size: uv.lock files of large envs can be big.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Fail loudly when the port is taken instead of sharing it with another server.
    ("grpc.so_reuseport", 0),
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
    allow_remote: bool = False,
    tls: tuple[str | bytes, str | bytes] | None = None,
    token: str | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_packages: int = DEFAULT_MAX_PACKAGES,
    min_cleanup_idle_hours: float = DEFAULT_MIN_CLEANUP_IDLE_HOURS,
) -> tuple[EnvManagerServer, int]:
    """Build a server for ``envmanager.EnvManagerService``, bound but not started.

    Args:
        address: ``host:port`` to listen on; port 0 picks a free port. It must
            be a loopback address (``127.0.0.1``, ``[::1]``, ``localhost``)
            unless ``allow_remote`` is true.
        manager: the core manager to serve; by default a new one on ``settings``.
        settings: settings for that new manager (ignored when ``manager`` is given).
        max_workers: threads answering RPCs. Each running create, add or sync
            holds one; the others go on answering status calls.
        options: extra gRPC channel options, after the defaults.
        allow_remote: allow an address that is not loopback (``0.0.0.0``, a
            public interface); protect such a server with ``tls`` and ``token``.
        tls: ``(certificate_chain_pem, private_key_pem)`` to serve over TLS.
        token: when given, every call but health checks must carry the
            metadata ``authorization: Bearer <token>`` (else UNAUTHENTICATED).
        max_message_bytes: the largest request accepted; larger ones are
            answered RESOURCE_EXHAUSTED.
        max_packages: packages one request may name; more is INVALID_ARGUMENT.
        min_cleanup_idle_hours: Cleanup never deletes envs idle less than
            this (an unset ``idle_hours`` reads as 0); 0 lets ``idle_hours = 0``
            delete every env not in use.

    Returns:
        The server (call ``start()``) and the port it is bound to.

    Raises:
        RemoteAddressNotAllowed: ``address`` is not loopback and ``allow_remote``
            is false (a ValueError).
        ValueError: a bad limit, token or TLS pair (messages never quote them).
        OSError: the address could not be bound.

    .. versionadded:: 0.1.0

    """
    check_address(address, allow_remote=allow_remote)
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, not {max_workers}")
    if max_message_bytes < 1024:  # noqa: PLR2004 - below this not even an id fits
        raise ValueError(f"max_message_bytes must be at least 1024, not {max_message_bytes}")
    interceptors: list[grpc.ServerInterceptor] = [RequestLogInterceptor()]
    if token is not None:
        interceptors.append(TokenInterceptor(check_token(token)))
    credentials = server_credentials(*tls) if tls is not None else None
    servicer = EnvManagerServicer(
        manager if manager is not None else uv_envs.EnvManager(settings),
        max_packages=max_packages,
        min_cleanup_idle_hours=min_cleanup_idle_hours,
    )
    executor = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="uv-envs-rpc")
    server = grpc.server(
        executor,
        interceptors=interceptors,
        options=[*_OPTIONS, ("grpc.max_receive_message_length", max_message_bytes), *options],
    )
    # A quarter of the workers at most may sit in health Watch streams.
    health = HealthServicer(max_watchers=max(1, max_workers // 4))
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_generic_rpc_handlers(
        [method_handlers(servicer), *reflection_handlers([SERVICE_NAME, HEALTH_SERVICE])]
    )
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError as exc:  # grpcio >= 1.64 raises; older versions return 0
        port = 0
        cause: BaseException | None = exc
    else:
        cause = None
    if port == 0:
        executor.shutdown(wait=False)
        hint = "" if credentials is None else " (or the TLS certificate and key are no valid pair)"
        raise OSError(f"could not listen on {address}{hint}") from cause
    logger.debug(
        "bound %s (port %d) with %d workers, TLS %s, token %s",
        address,
        port,
        max_workers,
        "on" if credentials is not None else "off",
        "required" if token is not None else "not required",
    )
    wrapped = EnvManagerServer(server, manager=servicer.manager, health=health, executor=executor)
    return wrapped, port
