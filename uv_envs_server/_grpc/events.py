"""``uvenvs.v1.Events``: the manager's event stream over a server-streaming Watch.

uv-envs' own service in its own proto package (protos/uvenvs_events.proto),
served on the port of WTB's ``envmanager.EnvManagerService``, which it leaves
untouched. Each Watch holds one thread of the server's pool while it streams,
so the server sizes its pool for the watchers it admits (``max_watchers``).

A watcher that stops reading stalls the send of its next message once HTTP/2
flow control has filled its window, and the send holds the thread with it:
the write deadline (:class:`SendDeadline`) cancels a Watch whose message has
not gone out in time, which ends the send and gives the thread back.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Final

import grpc

import uv_envs
from uv_envs_server._generated import uvenvs_events_pb2 as events_pb
from uv_envs_server._limits import DEFAULT_WRITE_TIMEOUT, limit_event_names

from .errors import abort, from_rpc_error

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Iterator

    Watching = grpc._CallIterator[events_pb.Event]  # noqa: SLF001 - the stubs' name for it

WATCH_SERVICE: Final = "uvenvs.v1.Events"
WATCH_PATH: Final = f"/{WATCH_SERVICE}/Watch"

#: Seconds between two checks whether a quiet stream's client is still there.
IDLE_CHECK = 5.0

_PORT: Final = re.compile(r":\d+$")


def client_address(peer: str) -> str:
    """The host part of a gRPC peer (``ipv4:127.0.0.1:5000`` -> ``ipv4:127.0.0.1``).

    Watchers are capped per address, not per connection: a client opening
    many channels is still one client.
    """
    return _PORT.sub("", peer)


def event_filter(request: events_pb.WatchRequest) -> tuple[uv_envs.EventFilter, int | None]:
    """The core filter and the sequence to resume after; InvalidInput for a bad one."""
    chosen = uv_envs.EventFilter(
        workflow_id=request.workflow_id or None,
        node_id=request.node_id or None,
        names=limit_event_names(request.names),
        operation_id=request.operation_id or None,
    )
    after = request.after_sequence if request.HasField("after_sequence") else None
    return chosen, after


def event_message(event: uv_envs.StreamEvent) -> events_pb.Event:
    """The proto message of one stream event."""
    message = events_pb.Event(
        sequence=event.sequence,
        name=event.name,
        operation_id=event.operation_id,
        occurred_at=event.occurred_at,
        phase=event.phase.value if event.phase is not None else "",
        counts=dict(event.counts),
        details_json=json.dumps(dict(event.details), sort_keys=True),
    )
    if event.key is not None:
        key = event.key
        message.key.CopyFrom(
            events_pb.EnvKey(
                workflow_id=key.workflow_id, node_id=key.node_id, version_id=key.version_id
            )
        )
    return message


def stream_event(message: events_pb.Event) -> uv_envs.StreamEvent:
    """The other way round, for the client."""
    key = message.key if message.HasField("key") else None
    details: Any = json.loads(message.details_json) if message.details_json else {}
    return uv_envs.StreamEvent(
        sequence=message.sequence,
        name=message.name,
        operation_id=message.operation_id,
        key=uv_envs.EnvKey(key.workflow_id, key.node_id, key.version_id) if key else None,
        occurred_at=message.occurred_at,
        phase=uv_envs.Phase(message.phase) if message.phase else None,
        counts=dict(message.counts),
        details=details if isinstance(details, dict) else {},
    )


class SendDeadline:
    """Cancels a Watch whose message has not gone out within ``seconds``.

    A stream's generator is suspended at its ``yield`` while gRPC sends the
    message, so "sending" is the time from a yield until the generator runs
    again. One thread, started with the first Watch, checks the open sends.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._sending: dict[uv_envs.Subscription, tuple[float, grpc.ServicerContext]] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def sending(self, subscription: uv_envs.Subscription, context: grpc.ServicerContext) -> None:
        """A message of ``subscription`` is about to be sent."""
        with self._lock:
            self._sending[subscription] = (time.monotonic() + self.seconds, context)
            if self._thread is None and not self._stopped.is_set():
                self._thread = threading.Thread(
                    target=self._watch, name="uv-envs-watch-deadline", daemon=True
                )
                self._thread.start()

    def sent(self, subscription: uv_envs.Subscription) -> None:
        """The message went out (or the stream ended)."""
        with self._lock:
            self._sending.pop(subscription, None)

    def stop(self) -> None:
        self._stopped.set()

    def _watch(self) -> None:
        while not self._stopped.wait(min(self.seconds / 4, 1.0)):
            now = time.monotonic()
            with self._lock:
                late = [(s, c) for s, (due, c) in self._sending.items() if due <= now]
            for subscription, context in late:
                subscription.close()  # frees its place and buffer at once
                context.cancel()  # ends the stuck send: the thread returns to the pool


class EventsServicer:
    """Serves ``uvenvs.v1.Events/Watch`` from a manager's event stream.

    Args:
        manager: whose :attr:`~uv_envs.EnvManager.events` are streamed.
        limits: the caps on watchers, per server and per client address.
        write_timeout: seconds one message may take to go out before the
            Watch is cancelled (its client does not read).

    """

    def __init__(
        self,
        manager: uv_envs.EnvManager,
        limits: uv_envs.SubscriberLimits,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT,
    ) -> None:
        self.manager = manager
        self.limits = limits
        self._open: set[uv_envs.Subscription] = set()
        self._lock = threading.Lock()
        self._deadline = SendDeadline(write_timeout)

    def shutdown(self) -> None:
        """End every open Watch (the server is stopping: it would wait out its grace for them)."""
        self._deadline.stop()
        with self._lock:
            open_now = list(self._open)
        for subscription in open_now:
            subscription.close()

    def Watch(
        self, request: events_pb.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[events_pb.Event]:
        """Stream matching events until the client goes, the server stops or it is cut off."""
        try:
            chosen, after = event_filter(request)
            subscription = self.manager.events.subscribe(
                chosen, after=after, client=client_address(context.peer()), limits=self.limits
            )
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            abort(context, exc)
        # The callback runs when the RPC ends for any reason: it wakes the wait below.
        if not context.add_callback(subscription.close):
            subscription.close()
        with self._lock:
            self._open.add(subscription)
        try:
            while True:
                event = subscription.get(timeout=IDLE_CHECK)
                if event is None:
                    if subscription.closed or not context.is_active():
                        return
                    continue
                message = event_message(event)
                self._deadline.sending(subscription, context)
                yield message
                self._deadline.sent(subscription)
                if event.ends_stream:
                    return
        finally:
            self._deadline.sent(subscription)
            with self._lock:
                self._open.discard(subscription)
            subscription.close()


def events_handlers(servicer: EventsServicer) -> grpc.GenericRpcHandler:
    """The generic handler serving ``servicer`` as ``uvenvs.v1.Events``."""
    watch = grpc.unary_stream_rpc_method_handler(
        servicer.Watch,
        request_deserializer=events_pb.WatchRequest.FromString,
        response_serializer=events_pb.Event.SerializeToString,
    )
    return grpc.method_handlers_generic_handler(WATCH_SERVICE, {"Watch": watch})


def watch_request(
    workflow_id: str | None,
    node_id: str | None,
    names: Iterable[str],
    operation_id: str | None,
    after: int | None,
) -> events_pb.WatchRequest:
    """The request :meth:`~uv_envs_server.EnvManagerClient.watch` sends."""
    request = events_pb.WatchRequest(
        workflow_id=workflow_id or "",
        node_id=node_id or "",
        names=list(names),
        operation_id=operation_id or "",
    )
    if after is not None:
        request.after_sequence = after
    return request


def watch(
    channel: grpc.Channel,
    request: events_pb.WatchRequest,
    metadata: tuple[tuple[str, str], ...],
    wait_for_ready: bool,  # noqa: FBT001 - the client's own setting, passed along
) -> Generator[uv_envs.StreamEvent]:
    """Start a Watch on ``channel``; iterate its events (see :func:`iterate`)."""
    method = channel.unary_stream(
        WATCH_PATH,
        request_serializer=events_pb.WatchRequest.SerializeToString,
        response_deserializer=events_pb.Event.FromString,
    )
    return iterate(method(request, metadata=metadata, wait_for_ready=wait_for_ready))


def iterate(call: Watching) -> Generator[uv_envs.StreamEvent]:
    """The client side: stream events; a failed Watch raises the core exception it names.

    Closing the iterator (or leaving a ``for`` loop over it) cancels the call,
    which frees the server's place for the watcher.
    """
    try:
        for message in call:
            yield stream_event(message)
    except grpc.RpcError as err:
        if err.code() is grpc.StatusCode.CANCELLED:
            return  # the caller cancelled (closed the iterator or the channel)
        raise from_rpc_error(err) from err
    finally:
        call.cancel()
