"""What the event stream carries: numbered events, the phases of uv's progress, filters.

Which operation (and env) an event belongs to is :mod:`.tracking`'s.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import attrs

from uv_envs._errors import InvalidInput
from uv_envs._models import EnvKey
from uv_envs._validation import validate_id

#: The name of a progress event; the domain events keep their class names.
PROGRESS: Final = "OperationProgress"
#: Notices a subscriber gets that are not events of the root (not numbered, never replayed).
REPLAY_GAP: Final = "ReplayGap"
CUT_OFF: Final = "SubscriberCutOff"

DOMAIN_EVENTS: Final = frozenset(
    {
        "EnvironmentCreationStarted",
        "EnvironmentCreated",
        "EnvironmentCreationFailed",
        "EnvironmentDeleted",
        "DependenciesAdded",
        "DependenciesUpdated",
        "DependenciesRemoved",
        "DependencyOperationFailed",
        "EnvironmentSynced",
        "EnvironmentSyncFailed",
        "EnvironmentCleanupCompleted",
    }
)
#: The names a filter may ask for.
EVENT_NAMES: Final = DOMAIN_EVENTS | {PROGRESS}

#: Operation ids a caller may give: a request id's alphabet and length.
OPERATION_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class Phase(enum.StrEnum):
    """What an operation is doing, as far as uv's output tells."""

    RESOLVING = "resolving"
    DOWNLOADING = "downloading"
    INSTALLING = "installing"
    LINKING = "linking"
    CHECKING = "checking"
    COMPILING = "compiling"


@attrs.frozen
class StreamEvent:
    """One numbered event of the stream (or a notice to one subscriber, numbered 0)."""

    sequence: int
    name: str
    operation_id: str
    key: EnvKey | None
    occurred_at: float
    phase: Phase | None = None
    counts: Mapping[str, int] = attrs.field(factory=dict)
    details: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def is_notice(self) -> bool:
        """A :data:`REPLAY_GAP` or :data:`CUT_OFF` notice to one subscriber, not an event."""
        return self.sequence == 0

    @property
    def ends_stream(self) -> bool:
        """The :data:`CUT_OFF` notice: nothing follows it; resume after ``resume_after``."""
        return self.is_notice and self.name == CUT_OFF

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the key as its three fields (or None), the phase as its value."""
        key = self.key
        return {
            "sequence": self.sequence,
            "name": self.name,
            "operation_id": self.operation_id,
            "key": None if key is None else attrs.asdict(key),
            "occurred_at": self.occurred_at,
            "phase": None if self.phase is None else self.phase.value,
            "counts": dict(self.counts),
            "details": dict(self.details),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamEvent:
        """The inverse of :meth:`to_dict` (what the clients read off the wire)."""
        key = data.get("key")
        phase = data.get("phase")
        return cls(
            sequence=int(data["sequence"]),
            name=str(data["name"]),
            operation_id=str(data.get("operation_id", "")),
            key=None if not key else EnvKey(**key),
            occurred_at=float(data.get("occurred_at", 0.0)),
            phase=Phase(phase) if phase else None,
            counts={str(k): int(v) for k, v in dict(data.get("counts") or {}).items()},
            details=dict(data.get("details") or {}),
        )


def _names(value: Iterable[str]) -> frozenset[str]:
    listed = list(value)
    if len(listed) > len(EVENT_NAMES):
        raise InvalidInput(f"{len(listed)} event names given; there are {len(EVENT_NAMES)}")
    names = frozenset(listed)
    unknown = sorted(names - EVENT_NAMES)
    if unknown:
        shown = ", ".join(repr(n[:40]) for n in unknown[:3])
        raise InvalidInput(
            f"unknown event name(s) {shown}; known: {', '.join(sorted(EVENT_NAMES))}"
        )
    return names


def _optional_id(field: str) -> Callable[[object, attrs.Attribute[str | None], str | None], None]:
    def check(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
        if value is not None:
            validate_id(value, field)

    return check


def _check_operation(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None and not OPERATION_ID.fullmatch(value):
        raise InvalidInput("operation_id must be 1-128 characters of A-Z a-z 0-9 . _ : -")


@attrs.frozen
class EventFilter:
    """Which events a subscriber wants; every field left empty matches everything.

    Raises :class:`~uv_envs.InvalidInput` for an id that is no valid id and for
    event names that do not exist, so a filter is as bounded as a key.
    """

    workflow_id: str | None = attrs.field(default=None, validator=_optional_id("workflow_id"))
    node_id: str | None = attrs.field(default=None, validator=_optional_id("node_id"))
    names: frozenset[str] = attrs.field(default=frozenset(), converter=_names)
    operation_id: str | None = attrs.field(default=None, validator=_check_operation)

    def matches(self, event: StreamEvent) -> bool:
        if self.names and event.name not in self.names:
            return False
        if self.operation_id is not None and event.operation_id != self.operation_id:
            return False
        key = event.key
        if self.workflow_id is not None and (key is None or key.workflow_id != self.workflow_id):
            return False
        return self.node_id is None or (key is not None and key.node_id == self.node_id)


# -- which operation is running in this thread ---------------------------------------


def json_safe(details: Mapping[str, Any]) -> dict[str, Any]:
    # Details go to JSON and proto; anything else (paths, enums) is written as text.
    loaded: dict[str, Any] = json.loads(json.dumps(dict(details), default=str))
    return loaded
