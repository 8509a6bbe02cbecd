"""Server-Sent Events at ``/v1/events``: the manager's event stream over plain HTTP.

Starlette's ``StreamingResponse`` carries it: an SSE stream is a line format
over one long response, which needs no library beyond it. Each event is::

    id: <sequence>
    event: <name>
    data: <the event as JSON, on one line>

Notices (``ReplayGap``, ``SubscriberCutOff``) carry no ``id``, so a browser's
``Last-Event-ID`` stays the last real event's. A reconnecting client sends
``Last-Event-ID`` and gets the buffered events after it first.

The wait for events costs no thread: the subscription wakes the event loop
from the publishing thread (``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import threading
from typing import TYPE_CHECKING, Annotated, Final

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

import uv_envs
from uv_envs_server._http.patterns import EVENT_NAMES, ID_PATTERN, OPERATION_ID_PATTERN
from uv_envs_server._limits import MAX_EVENT_NAMES, limit_event_names

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable, Iterator

    from starlette.types import Receive, Scope, Send

    from uv_envs_server._options import ServeOptions

#: Seconds between two comment lines on a quiet stream: proxies close idle responses.
KEEPALIVE: Final = 15.0
_SEQUENCE: Final = re.compile(r"\d{1,19}")

router = APIRouter()


def encode(event: uv_envs.StreamEvent) -> bytes:
    """One SSE message."""
    lines = [] if event.is_notice else [f"id: {event.sequence}"]
    lines += [f"event: {event.name}", "data: " + json.dumps(event.to_dict(), sort_keys=True)]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


class Encoded:
    """The SSE bytes of the latest events, by sequence.

    Each event is encoded once, not once per subscriber (an app serves one
    manager, so its sequence numbers are unique).
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._messages: collections.OrderedDict[int, bytes] = collections.OrderedDict()

    def __call__(self, event: uv_envs.StreamEvent) -> bytes:
        if event.is_notice:
            return encode(event)
        message = self._messages.get(event.sequence)
        if message is None:
            message = self._messages[event.sequence] = encode(event)
            if len(self._messages) > self._size:
                self._messages.popitem(last=False)
        return message


def decode(lines: Iterable[str]) -> Iterator[uv_envs.StreamEvent]:
    """The events of an SSE stream (comments and unknown fields are skipped)."""
    data: list[str] = []
    for line in lines:
        if line:
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value.removeprefix(" "))
            continue
        if data:
            yield uv_envs.StreamEvent.from_dict(json.loads("\n".join(data)))
            data = []


def _resume_after(after: int | None, last_event_id: str | None) -> int | None:
    if last_event_id is None:
        return after
    if not _SEQUENCE.fullmatch(last_event_id.strip()):
        raise uv_envs.InvalidInput("Last-Event-ID must be an event's sequence number")
    return int(last_event_id.strip())


class Waker:
    """Wakes waiting streams from the publishing thread with one loop callback per burst.

    One event reaches every subscriber at once; a ``call_soon_threadsafe`` each
    would write the loop's wake-up pipe once per subscriber.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[asyncio.Event] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scheduled = False

    def bind(self) -> None:
        """Remember the running loop (the first stream does, on the loop's thread)."""
        self._loop = asyncio.get_running_loop()

    def wake(self, event: asyncio.Event) -> None:
        with self._lock:
            self._pending.append(event)
            loop, first = self._loop, not self._scheduled
            self._scheduled = self._scheduled or loop is not None
        if first and loop is not None:
            loop.call_soon_threadsafe(self._flush)

    def _flush(self) -> None:
        with self._lock:
            pending, self._pending, self._scheduled = self._pending, [], False
        for event in pending:
            event.set()


def _drain(subscription: uv_envs.Subscription, most: int = 64) -> list[uv_envs.StreamEvent]:
    """Up to ``most`` buffered events, without waiting; the cut-off notice ends a batch."""
    batch: list[uv_envs.StreamEvent] = []
    while len(batch) < most:
        event = subscription.poll()
        if event is None:
            break
        batch.append(event)
        if event.ends_stream:
            break
    return batch


async def _events(request: Request, subscription: uv_envs.Subscription) -> AsyncIterator[bytes]:
    wake = asyncio.Event()
    waker: Waker = request.app.state.waker
    waker.bind()
    subscription.wakeup = lambda: waker.wake(wake)
    watchers: set[uv_envs.Subscription] = request.app.state.watchers
    encoded: Encoded = request.app.state.encoded  # used on the loop's thread only
    watchers.add(subscription)
    try:
        yield b": watching\n\n"  # the headers and a first line go out at once
        while True:
            wake.clear()
            batch = _drain(subscription)
            if not batch:
                if subscription.closed:
                    return
                try:
                    await asyncio.wait_for(wake.wait(), KEEPALIVE)
                except TimeoutError:
                    yield b": keepalive\n\n"
                continue
            # A burst (uv's lines come several at once) goes out in one write.
            yield b"".join(encoded(event) for event in batch)
            if batch[-1].ends_stream:
                return
    finally:
        watchers.discard(subscription)
        subscription.close()


class _EventsResponse(StreamingResponse):
    """The SSE response; it frees the subscriber's place however it ends.

    The stream's own ``finally`` does too, but only once it has started: a
    client gone before the first byte would otherwise keep a place under the caps.
    """

    def __init__(self, subscription: uv_envs.Subscription, body: AsyncIterator[bytes]) -> None:
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        super().__init__(body, media_type="text/event-stream", headers=headers)
        self.subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.subscription.close()


#: An event's name; the schema lists them (the core refuses any other, 422).
EventName = Annotated[str, Field(json_schema_extra={"enum": EVENT_NAMES})]


class WatchQuery(BaseModel):
    """The filter of ``/v1/events``, as query parameters (``names`` may repeat)."""

    model_config = ConfigDict(extra="forbid")

    workflow_id: str | None = Field(default=None, pattern=ID_PATTERN)
    node_id: str | None = Field(default=None, pattern=ID_PATTERN)
    names: list[EventName] = Field(default_factory=list, max_length=MAX_EVENT_NAMES)
    operation_id: str | None = Field(default=None, pattern=OPERATION_ID_PATTERN)
    after: int | None = Field(default=None, ge=0, lt=2**63)


@router.get("/v1/events", tags=["events"], response_class=StreamingResponse)
async def events(
    request: Request,
    query: Annotated[WatchQuery, Query()],
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    """Follow the server's events live as Server-Sent Events (see docs/http.md).

    Filters as gRPC's Watch; ``after`` (or the ``Last-Event-ID`` header a
    reconnecting ``EventSource`` sends) first replays the buffered events
    numbered after it. 429 past the watcher caps.
    """
    chosen = uv_envs.EventFilter(
        workflow_id=query.workflow_id,
        node_id=query.node_id,
        names=limit_event_names(query.names),
        operation_id=query.operation_id,
    )
    manager: uv_envs.EnvManager = request.app.state.manager
    client = request.client.host if request.client is not None else ""
    subscription = manager.events.subscribe(
        chosen,
        after=_resume_after(query.after, last_event_id),
        client=client,
        limits=request.app.state.watcher_limits,
    )
    return _EventsResponse(subscription, _events(request, subscription))


def install(app_state: object, options: ServeOptions) -> None:
    """What :func:`events` reads from ``app.state``: the caps and the open streams."""
    app_state.watcher_limits = options.watcher_limits  # type: ignore[attr-defined]
    app_state.watchers = set()  # type: ignore[attr-defined]
    app_state.encoded = Encoded()  # type: ignore[attr-defined]
    app_state.waker = Waker()  # type: ignore[attr-defined]


def close_all(app_state: object) -> None:
    """End every open stream (the server is stopping: uvicorn waits for open responses)."""
    watchers: set[uv_envs.Subscription] = getattr(app_state, "watchers", set())
    for subscription in watchers.copy():  # one C call: atomic under the GIL
        subscription.close()
