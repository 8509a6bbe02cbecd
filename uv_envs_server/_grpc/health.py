"""``grpc.health.v1.Health``: the official servicer, with caps on Watch streams and a drain.

grpcio-health-checking keeps the statuses and answers Check; this subclass
adds what a server with a fixed pool of workers needs. The request-log
interceptor wraps every handler, so Watch runs in the servicer's blocking
mode and each open stream holds a worker thread: the streams are capped, and
:meth:`HealthServicer.shutdown` ends them, so ``server.stop(grace)`` does not
wait the whole grace period for watchers that never hang up.

Health needs no token, so the streams are capped per client address as well:
one client must not take every place and blind the load balancers.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
from typing import TYPE_CHECKING, Final

import grpc
from grpc_health.v1 import health, health_pb2

import uv_envs

from .events import client_address
from .proto import SERVICE_NAME

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

logger = logging.getLogger("uv_envs_server")

HEALTH_SERVICE: Final[str] = health.SERVICE_NAME
#: The health service name of the served Ray cluster: NOT_SERVING while its head is away.
CLUSTER_SERVICE: Final[str] = "uv_envs.RayCluster"


class _Stream:
    """The responses of one Watch stream, fed by the official servicer's callback."""

    def __init__(self) -> None:
        self._responses: queue.SimpleQueue[health_pb2.HealthCheckResponse | None] = (
            queue.SimpleQueue()
        )

    def send(self, response: health_pb2.HealthCheckResponse | None) -> None:
        """Queue one response; None ends the stream."""
        self._responses.put(response)

    def __iter__(self) -> Iterator[health_pb2.HealthCheckResponse]:
        while (response := self._responses.get()) is not None:
            yield response


class HealthServicer(health.HealthServicer):
    """grpcio-health-checking's ``HealthServicer``, capped and drained.

    The overall server (``""``) and ``envmanager.EnvManagerService`` are
    SERVING from the start. :meth:`shutdown` turns every service NOT_SERVING
    (``enter_graceful_shutdown``) and then ends every Watch stream, so load
    balancers drain before the server stops.

    Args:
        services: the service names reported SERVING.
        max_watchers: Watch streams served at once. Each holds a worker thread
            of the server for as long as it is open, so they are capped to
            leave workers for the real work; one more answers RESOURCE_EXHAUSTED.
        max_watchers_per_client: Watch streams one client address may hold
            (the service needs no token); one more answers RESOURCE_EXHAUSTED.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self,
        services: Iterable[str] = ("", SERVICE_NAME),
        *,
        max_watchers: int = 4,
        max_watchers_per_client: int = 1,
    ) -> None:
        # Blocking mode on purpose: interceptors drop the non-blocking marker anyway.
        super().__init__(experimental_non_blocking=False)
        #: what :meth:`update` reported last, by service
        self._reported: dict[str, int] = {}
        for service in services:
            self.set(service, health_pb2.HealthCheckResponse.SERVING)
            self._reported[service] = health_pb2.HealthCheckResponse.SERVING
        self._watchers = threading.BoundedSemaphore(max_watchers)
        self._per_client = max_watchers_per_client
        self._clients: collections.Counter[str] = collections.Counter()
        self._streams: set[_Stream] = set()
        self._streams_lock = threading.Lock()
        self._draining = False

    def Watch(  # type: ignore[override]  # a generator, not the official _Watcher: see below
        self,
        request: health_pb2.HealthCheckRequest,
        context: grpc.ServicerContext,
        send_response_callback: Callable[[health_pb2.HealthCheckResponse | None], None]
        | None = None,
    ) -> Iterator[health_pb2.HealthCheckResponse]:
        """Stream the status of one service each time it changes."""
        del send_response_callback  # only passed in non-blocking mode, which is off
        client = client_address(context.peer())
        with self._streams_lock:
            admitted = self._clients[client] < self._per_client
            if admitted:
                self._clients[client] += 1
        if not admitted:
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                "this client has too many health Watch streams; use Check",
            )
        if not self._watchers.acquire(blocking=False):
            self._leave(client)
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "too many health Watch streams; use Check"
            )
        stream = _Stream()
        try:
            with self._streams_lock:
                draining = self._draining
                self._streams.add(stream)
            # Sends the current status now and each change later; ends the stream on hang-up.
            super().Watch(request, context, stream.send)
            if draining:  # started after shutdown() ended the others: NOT_SERVING, then the end
                stream.send(None)
            yield from stream
        finally:
            with self._streams_lock:
                self._streams.discard(stream)
            self._watchers.release()
            self._leave(client)

    def update(self, service: str, status: int) -> bool:
        """Report ``service`` with ``status`` unless it is already; whether it changed.

        Watchers hear changes only (``set`` sends every call to them).
        """
        with self._streams_lock:
            changed = self._reported.get(service) != status
            self._reported[service] = status
        if changed:
            self.set(service, status)
        return changed

    def follow(self, cluster: uv_envs.ClusterView | None) -> bool:
        """Report :data:`CLUSTER_SERVICE` as ``cluster`` answers; True when it needs a new process.

        NOT_SERVING while the served cluster's head is away (logged once);
        True once a new cluster answers at its address, which only a new
        process can join (``uv_envs/ray/_link.py``).
        """
        if cluster is None:
            return False
        reason = cluster.unavailable()
        status: int = health_pb2.HealthCheckResponse.SERVING
        if reason is not None:
            status = health_pb2.HealthCheckResponse.NOT_SERVING
        if self.update(CLUSTER_SERVICE, status) and reason is not None:
            logger.error("%s: creates answer UNAVAILABLE meanwhile", reason)
        return cluster.needs_restart()

    def _leave(self, client: str) -> None:
        with self._streams_lock:
            self._clients[client] -= 1
            if self._clients[client] <= 0:
                del self._clients[client]  # the counter would keep every address ever seen

    def shutdown(self) -> None:
        """Report every service NOT_SERVING, then end all Watch streams."""
        self.enter_graceful_shutdown()
        with self._streams_lock:
            self._draining = True
            streams = tuple(self._streams)
        for stream in streams:
            stream.send(None)
