"""Wiring: one EnvManager, one thread pool, the service, health and reflection.

Also the server's guards, as :class:`~uv_envs_server.ServeOptions` asks:
loopback unless ``allow_remote``, optional TLS, an optional bearer token, a
request size limit, request ids in the log.
"""

from __future__ import annotations

import errno
import logging
import socket
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2_grpc

import uv_envs
from uv_envs_server._options import ServeOptions
from uv_envs_server._request_ids import CallCounts
from uv_envs_server._security import server_credentials

from .events import WATCH_SERVICE, EventsServicer, events_handlers
from .health import CLUSTER_SERVICE, HEALTH_SERVICE, HealthServicer
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

#: Connection lifetimes (milliseconds); ``channel_options`` may override each.
KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    # Ping a quiet client every minute; no answer within 20 s closes its connection,
    # so a client machine that vanished does not hold a connection and its streams.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    # A connection with no call for 10 minutes is closed (the client reconnects).
    ("grpc.max_connection_idle_ms", 600_000),
    # After an hour a connection is asked to go (GOAWAY), so load spreads again over
    # restarted servers; calls running then get another hour: a create is never cut.
    ("grpc.max_connection_age_ms", 3_600_000),
    ("grpc.max_connection_age_grace_ms", 3_600_000),
    # Clients' own keepalive pings every 10 s or slower are welcome, even between calls.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
)

_OPTIONS: tuple[tuple[str, Any], ...] = (
    # Fail loudly when the port is taken instead of sharing it with another server.
    ("grpc.so_reuseport", 0),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    *KEEPALIVE_OPTIONS,
)


class EnvManagerServer(grpc.Server):
    """A ``grpc.Server`` serving uv-envs, whose :meth:`stop` drains health first.

    Made by :func:`create_server`. ``manager``, ``health`` and ``executor`` are
    the parts it was built from; ``calls`` counts the calls it answered.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        server: grpc.Server,
        *,
        manager: uv_envs.EnvManager,
        health: HealthServicer,
        executor: futures.ThreadPoolExecutor,
        events: EventsServicer | None = None,
        calls: CallCounts | None = None,
    ) -> None:
        self._server = server
        #: The calls answered, by method and code (``create_http_server(grpc_calls=...)``).
        self.calls = calls if calls is not None else CallCounts()
        self.manager = manager
        self.health = health
        self.executor = executor
        self._events = events

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
        if self._events is not None:
            self._events.shutdown()  # open Watch streams end now, not after the grace
        return self._server.stop(grace)

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        """Block until the server stops, or ``timeout`` passes (then returns True)."""
        return self._server.wait_for_termination(timeout)


def create_server(
    manager: uv_envs.EnvManager,
    options: ServeOptions | None = None,
    *,
    channel_options: Sequence[tuple[str, Any]] = (),
) -> tuple[EnvManagerServer, int]:
    """Build a server for ``envmanager.EnvManagerService``, bound but not started.

    Args:
        manager: the core manager to serve.
        options: where to listen, TLS, token and limits; ``ServeOptions()`` (a
            free port on 127.0.0.1) by default. ``max_workers`` threads answer
            RPCs; a quarter of them at most may sit in health Watch streams.
        channel_options: extra gRPC channel options; each overrides a default of its key.

    Returns:
        The server (call ``start()``) and the port it is bound to.

    Raises:
        ValueError: a TLS file that cannot be read or is not PEM (messages never
            quote them).
        OSError: the address could not be bound, or the TLS pair does not load.

    .. versionadded:: 0.1.0

    """
    options = options if options is not None else ServeOptions()
    address = options.address
    _refuse_taken_port(options.host, options.port, address)
    calls = CallCounts()
    interceptors: list[grpc.ServerInterceptor] = [RequestLogInterceptor(calls)]
    if options.token is not None:
        interceptors.append(TokenInterceptor(options.token))
    tls = options.tls
    credentials = server_credentials(*tls.read_pems()) if tls is not None else None
    servicer = EnvManagerServicer(
        manager,
        max_packages=options.max_packages,
        min_cleanup_idle_hours=options.min_cleanup_idle_hours,
    )
    workers = options.max_workers
    # Each Watch stream holds a thread: room for the admitted ones beside the workers.
    executor = futures.ThreadPoolExecutor(
        max_workers=workers + options.max_watchers, thread_name_prefix="uv-envs-rpc"
    )
    receive = ("grpc.max_receive_message_length", options.max_message_bytes)
    # gRPC keeps the first of two values for one key: merged, so the caller's wins.
    merged = dict([*_OPTIONS, receive, *channel_options])
    server = grpc.server(executor, interceptors=interceptors, options=list(merged.items()))
    services: tuple[str, ...] = ("", SERVICE_NAME, WATCH_SERVICE)
    if manager.cluster is not None:  # its own status: the rest serves while the head is away
        services = (*services, CLUSTER_SERVICE)
    health = HealthServicer(services, max_watchers=max(1, workers // 4))
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    served = [SERVICE_NAME, WATCH_SERVICE, HEALTH_SERVICE]
    events = EventsServicer(manager, options.watcher_limits, options.write_timeout)
    server.add_generic_rpc_handlers(
        [method_handlers(servicer), events_handlers(events), *reflection_handlers(served)]
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
        workers,
        "on" if credentials is not None else "off",
        "required" if options.token is not None else "not required",
    )
    wrapped = EnvManagerServer(
        server, manager=manager, health=health, executor=executor, events=events, calls=calls
    )
    return wrapped, port


def _refuse_taken_port(host: str, port: int, address: str) -> None:
    """Raise OSError (errno EADDRINUSE) if ``port`` is taken, before gRPC tries it.

    gRPC core would find out too, but it first logs a line of its own to stderr
    (``E... add_port.cc``), which is noise before the one message users need.
    """
    if port == 0:
        return
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except (OSError, IndexError):
        return  # an address gRPC itself will refuse, with its own reason
    with socket.socket(family, kind, proto) as probe:
        # As gRPC binds: a port left in TIME_WAIT is free, one with a listener is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return
            taken = OSError(f"could not listen on {address}: {exc.strerror}")
            taken.errno = exc.errno
            raise taken from None
