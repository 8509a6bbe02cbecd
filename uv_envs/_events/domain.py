"""Domain events and the publisher port.

A publisher is a plain callable taking one event. The manager calls it after
each step; a publisher that raises is logged and ignored, so it can never
break or undo an operation. :class:`EventBus` fans events out to subscribers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from uv_envs._models import EnvKey

log = logging.getLogger("uv_envs.events")


@attrs.frozen
class DomainEvent:
    """Something that happened to one environment (or, for cleanup, to the root)."""

    key: EnvKey | None
    occurred_at: float = attrs.field(factory=time.time, kw_only=True)
    details: Mapping[str, Any] = attrs.field(factory=dict, kw_only=True)

    @property
    def name(self) -> str:
        return type(self).__name__


class EnvironmentCreationStarted(DomainEvent):
    """A create (or a respec by ensure) began building."""


class EnvironmentCreated(DomainEvent):
    """An environment became READY."""


class EnvironmentCreationFailed(DomainEvent):
    """A create failed and was rolled back."""


class EnvironmentDeleted(DomainEvent):
    """An environment was removed."""


class DependenciesAdded(DomainEvent):
    """``add`` switched the env to a generation with more dependencies."""


class DependenciesUpdated(DomainEvent):
    """``update`` switched the env to a generation with upgraded locked versions."""


class DependenciesRemoved(DomainEvent):
    """``remove`` switched the env to a generation without some dependencies."""


class DependencyOperationFailed(DomainEvent):
    """add, update or remove failed; the env is unchanged."""


class EnvironmentSynced(DomainEvent):
    """``sync`` rebuilt the venv from the lock."""


class EnvironmentSyncFailed(DomainEvent):
    """``sync`` failed; the env is unchanged."""


class EnvironmentCleanupCompleted(DomainEvent):
    """A cleanup pass finished."""


EventPublisher = Callable[[DomainEvent], None]


def safe_publish(publisher: EventPublisher | None, event: DomainEvent) -> None:
    """Hand ``event`` to ``publisher``; log and swallow whatever it raises."""
    if publisher is None:
        return
    try:
        publisher(event)
    except Exception:
        log.exception("event publisher failed on %s; the operation is not affected", event.name)


@attrs.define
class EventBus:
    """A publisher that calls every subscriber of an event's class (or a base class)."""

    _subscribers: list[tuple[type[DomainEvent], EventPublisher]] = attrs.field(
        factory=list, init=False
    )
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def subscribe(
        self, handler: EventPublisher, event_type: type[DomainEvent] = DomainEvent
    ) -> None:
        with self._lock:
            self._subscribers.append((event_type, handler))

    def __call__(self, event: DomainEvent) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for event_type, handler in subscribers:
            if isinstance(event, event_type):
                safe_publish(handler, event)


def logging_publisher(event: DomainEvent) -> None:
    """A publisher that writes each event to the ``uv_envs.events`` logger."""
    log.info("%s %s %s", event.name, event.key, dict(event.details))
