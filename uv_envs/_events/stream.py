"""The event stream: every domain event and uv's progress, numbered, for live subscribers.

The manager publishes into one :class:`EventStream`: each of the eleven domain
events and, while uv runs, :data:`PROGRESS` events naming the phase
(:class:`Phase`) and the counts uv printed. Every event carries the operation
id (the server's request id, or one made per locked operation), the env key
and a sequence number that only grows.

Publishing never waits for a subscriber: each has a bounded buffer, and one
whose buffer is full is cut off (the event is dropped and counted) rather
than waited for. A cut-off subscriber drains what it has, learns how many
events it missed, and can resume from the replay buffer by sequence number.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from uv_envs._errors import InvalidInput, TooManySubscribers
from uv_envs._events.domain import DomainEvent
from uv_envs._events.records import (
    CUT_OFF,
    PROGRESS,
    REPLAY_GAP,
    EventFilter,
    Phase,
    StreamEvent,
    json_safe,
)
from uv_envs._events.tracking import current_env, current_operation
from uv_envs._models import EnvKey

# -- subscribers -----------------------------------------------------------------------


log = logging.getLogger("uv_envs.events")


class Subscription:
    """One subscriber's bounded buffer; made by :meth:`EventStream.subscribe`.

    ``get`` waits for the next event; ``poll`` takes one without waiting
    (``wakeup``, when given, is called from the publishing thread whenever an
    event arrives, so an event loop needs no thread per subscriber). After a
    cut-off or :meth:`close` the buffer drains, then ``get`` and ``poll``
    return the closing notice once and None after it.
    """

    def __init__(
        self, stream: EventStream, event_filter: EventFilter, capacity: int, client: str
    ) -> None:
        self.filter = event_filter
        self.client = client
        self.dropped = 0
        self.missed = 0
        self._stream = stream
        self._capacity = capacity
        self._buffer: collections.deque[StreamEvent] = collections.deque()
        self._ready = threading.Condition(threading.Lock())
        self._open = True
        self._notice: StreamEvent | None = None
        self.wakeup: Callable[[], None] | None = None

    @property
    def cut_off(self) -> bool:
        return self.dropped > 0

    @property
    def closed(self) -> bool:
        return not self._open

    def offer(self, event: StreamEvent) -> bool:
        """Buffer ``event`` without waiting; False (cut off, event counted) when full."""
        with self._ready:
            if not self._open:
                return True
            if len(self._buffer) >= self._capacity:
                # Cut off at the first event it cannot take: it resumes from the
                # replay buffer after the last one it got, without a hole in between.
                self.dropped += 1
                last = self._buffer[-1].sequence
                self._end(CUT_OFF, {"dropped": self.dropped, "resume_after": last}, 0)
                return False
            # Only an empty buffer's reader may be waiting: a burst wakes it once, not per event.
            waiting = not self._buffer
            self._buffer.append(event)
            self._ready.notify()
        if waiting:
            self._wake()
        return True

    def poll(self) -> StreamEvent | None:
        """The next event if one is buffered, the closing notice once closed, else None."""
        with self._ready:
            return self._take()

    def get(self, timeout: float | None = None) -> StreamEvent | None:
        """Wait up to ``timeout`` seconds for the next event; None on timeout or at the end."""
        with self._ready:
            self._ready.wait_for(lambda: bool(self._buffer) or not self._open, timeout)
            return self._take()

    def close(self) -> None:
        """Stop receiving; frees the subscriber's place under the caps."""
        with self._ready:
            if self._open:
                self._end(None, {}, 0)
        self._stream.unsubscribe(self)
        self._wake()

    def _end(self, notice: str | None, counts: Mapping[str, int], sequence: int) -> None:
        self._open = False
        if notice is not None:
            self._notice = StreamEvent(sequence, notice, "", None, time.time(), counts=counts)
        self._ready.notify_all()

    def _take(self) -> StreamEvent | None:
        if self._buffer:
            return self._buffer.popleft()
        notice, self._notice = self._notice, None
        return notice

    def _wake(self) -> None:
        wakeup = self.wakeup
        if wakeup is None:
            return
        try:
            wakeup()
        except Exception:
            log.exception("waking a subscriber failed")


@attrs.frozen
class StreamStats:
    """What :attr:`EventStream.stats` reports: subscribers now, events, cut-offs, drops."""

    subscribers: int
    published: int
    cut_off: int
    dropped: int
    oldest_replayable: int


@attrs.frozen
class SubscriberLimits:
    """Caps a front door puts on :meth:`EventStream.subscribe`, counted per stream."""

    total: int = 64
    per_client: int = 8


class EventStream:
    """The numbered events of one manager, fanned out to bounded subscribers.

    Args:
        replay: events kept for subscribers resuming after a sequence number.
        buffer: events one subscriber may fall behind before it is cut off.

    """

    def __init__(self, *, replay: int = 1024, buffer: int = 1024) -> None:
        if replay < 1 or buffer < 1:
            raise ValueError("replay and buffer must be at least 1")
        self.buffer = buffer
        self._replay: collections.deque[StreamEvent] = collections.deque(maxlen=replay)
        self._subscribers: list[Subscription] = []
        self._lock = threading.Lock()
        self._sequence = itertools.count(1)
        self._last = 0
        self._cut_off = 0
        self._dropped = 0

    def configure(self, *, replay: int | None = None, buffer: int | None = None) -> None:
        """Resize the replay buffer (keeping its newest events) or new subscribers' buffers."""
        if (replay is not None and replay < 1) or (buffer is not None and buffer < 1):
            raise ValueError("replay and buffer must be at least 1")
        with self._lock:
            if replay is not None:
                self._replay = collections.deque(self._replay, maxlen=replay)
            if buffer is not None:
                self.buffer = buffer

    @property
    def last_sequence(self) -> int:
        return self._last

    @property
    def stats(self) -> StreamStats:
        with self._lock:
            oldest = self._replay[0].sequence if self._replay else self._last + 1
            return StreamStats(
                len(self._subscribers), self._last, self._cut_off, self._dropped, oldest
            )

    def publish(self, event: DomainEvent) -> None:
        """Number and fan out a domain event (the manager's publisher calls this)."""
        details = json_safe(event.details)
        self._publish(event.name, event.key, None, {}, details, event.occurred_at)

    def progress(self, phase: Phase, counts: Mapping[str, int], details: Mapping[str, Any]) -> None:
        """Number and fan out a progress event of the operation running in this thread."""
        self._publish(PROGRESS, current_env(), phase, dict(counts), json_safe(details), time.time())

    def subscribe(
        self,
        event_filter: EventFilter | None = None,
        *,
        after: int | None = None,
        client: str = "",
        limits: SubscriberLimits | None = None,
    ) -> Subscription:
        """A new subscriber; with ``after`` it first gets the buffered events numbered later.

        When some of those are no longer buffered its first item is a
        :data:`REPLAY_GAP` notice counting them. Raises
        :class:`~uv_envs.TooManySubscribers` past ``limits`` and
        :class:`~uv_envs.InvalidInput` for a negative ``after``.
        """
        if after is not None and after < 0:
            raise InvalidInput("a sequence number to resume after is >= 0")
        event_filter = event_filter if event_filter is not None else EventFilter()
        with self._lock:
            # A resuming subscriber has room for the replay on top of its buffer.
            room = self.buffer + (len(self._replay) + 1 if after is not None else 0)
            subscription = Subscription(self, event_filter, room, client)
            self._admit(client, limits)
            if after is not None:
                self._replay_into(subscription, after)
            self._subscribers.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._subscribers.remove(subscription)

    def _admit(self, client: str, limits: SubscriberLimits | None) -> None:
        if limits is None:
            return
        if len(self._subscribers) >= limits.total:
            raise TooManySubscribers(f"this server already has {limits.total} subscribers")
        if sum(s.client == client for s in self._subscribers) >= limits.per_client:
            raise TooManySubscribers(f"this client already has {limits.per_client} subscribers")

    def _replay_into(self, subscription: Subscription, after: int) -> None:
        oldest = self._replay[0].sequence if self._replay else self._last + 1
        missed = max(0, min(oldest, self._last + 1) - after - 1)
        if missed:
            subscription.missed = missed
            gap = StreamEvent(0, REPLAY_GAP, "", None, time.time(), counts={"missed": missed})
            subscription.offer(gap)
        for event in self._replay:
            if event.sequence > after and subscription.filter.matches(event):
                subscription.offer(event)

    def _publish(
        self,
        name: str,
        key: EnvKey | None,
        phase: Phase | None,
        counts: dict[str, int],
        details: dict[str, Any],
        occurred_at: float,
    ) -> None:
        operation = current_operation()
        with self._lock:
            # Numbered under the lock, so subscribers see the numbers in order.
            sequence = next(self._sequence)
            event = StreamEvent(sequence, name, operation, key, occurred_at, phase, counts, details)
            self._last = sequence
            self._replay.append(event)
            cut = [s for s in self._subscribers if s.filter.matches(event) and not s.offer(event)]
            for subscription in cut:
                self._subscribers.remove(subscription)
                self._cut_off += 1
                self._dropped += subscription.dropped
