"""The ``AuditLog`` port: one record per operation, and what every store shares.

Each operation writes a RUNNING record when it starts and completes it with its
outcome, so an operation interrupted by a crash stays visible (recovery marks
it FAILED). Every record carries the host and root it came from, so one shared
store (:mod:`.postgres`) can hold many; :func:`~uv_envs.open_audit_log` picks
the store from the settings (:mod:`.sqlite` by default).

A store is given an :class:`AuditOutcome` to finish a record with and an
:class:`AuditQuery` to read records by; the records bound what they carry
(clipped output, page size), so every store keeps and pages alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import attrs

from uv_envs._models import EnvKey, OperationStatus
from uv_envs._reports import DeletedOperations, OperationPage, OperationRecord

RUNNING = OperationStatus.RUNNING
SUCCESS = OperationStatus.SUCCESS
FAILED = OperationStatus.FAILED

#: The characters of a command's stdout and of its stderr a record keeps (the last ones).
MAX_OUTPUT = 64 * 1024
#: The most records one page holds.
MAX_PAGE = 1000

#: The columns every store returns, in the order :func:`record_from_row` reads them.
COLUMNS = (
    "id, workflow_id, node_id, version_id, operation, status, started_at, finished_at,"
    " duration_ms, stdout, stderr, exit_code, error, metadata, pid, host, root"
)


class AuditLog(Protocol):
    """Records every operation."""

    def start(self, key: EnvKey, operation: str, metadata: Mapping[str, Any] | None = None) -> int:
        """Record that an operation began; return the record id."""
        ...

    def finish(self, record_id: int, outcome: AuditOutcome) -> None:
        """Complete a record with the outcome (an unknown ``record_id`` changes nothing)."""
        ...

    def query(self, query: AuditQuery) -> OperationPage:
        """The records ``query`` selects, newest first, on the page it names."""
        ...

    def delete(self, workflow_id: str, node_id: str | None = None) -> DeletedOperations:
        """Remove the records of a workflow, or of one of its nodes (of every host)."""
        ...

    def close(self) -> None:
        """Release what the log holds open (connections); it reopens on next use."""
        ...


def clip(text: str) -> str:
    """The last :data:`MAX_OUTPUT` characters of a command's output."""
    return text if len(text) <= MAX_OUTPUT else text[-MAX_OUTPUT:]


def _copied(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    # A copy: the caller's dict may change after the outcome is made (and a
    # PostgreSQL store may write the outcome only later, after an outage).
    return dict(metadata or {})


@attrs.frozen
class AuditOutcome:
    """How an operation ended: what :meth:`AuditLog.finish` writes into its record.

    Every store keeps the same: output is clipped here to its last
    :data:`MAX_OUTPUT` characters, and ``metadata`` is merged into that of the
    start, its keys winning. ``finished_at`` is when the outcome was made, so a
    store that can write it only later still records when the operation ended.
    """

    status: OperationStatus = attrs.field(
        converter=OperationStatus, validator=attrs.validators.in_((SUCCESS, FAILED))
    )
    stdout: str = attrs.field(default="", converter=clip, kw_only=True)
    stderr: str = attrs.field(default="", converter=clip, kw_only=True)
    exit_code: int | None = attrs.field(default=None, kw_only=True)
    error: str | None = attrs.field(default=None, kw_only=True)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_copied, kw_only=True)
    finished_at: float = attrs.field(factory=time.time, kw_only=True)


def _any_if_empty(value: str | None) -> str | None:
    return value or None


def _page_size(limit: int) -> int:
    return max(0, min(limit, MAX_PAGE))


def _page_start(offset: int) -> int:
    return max(0, offset)


@attrs.frozen(kw_only=True)
class AuditQuery:
    """Which records :meth:`AuditLog.query` returns: filters, and one page of the matches.

    A filter left ``None`` (or empty) matches every record; the rest must all
    match. An unknown ``status`` matches nothing. The page is bounded here, so
    every store pages alike: ``limit`` in ``0..MAX_PAGE``, ``offset >= 0``.
    """

    workflow_id: str | None = attrs.field(default=None, converter=_any_if_empty)
    node_id: str | None = attrs.field(default=None, converter=_any_if_empty)
    status: str | None = attrs.field(default=None, converter=_any_if_empty)
    host: str | None = attrs.field(default=None, converter=_any_if_empty)
    root: str | None = attrs.field(default=None, converter=_any_if_empty)
    limit: int = attrs.field(default=50, converter=_page_size)
    offset: int = attrs.field(default=0, converter=_page_start)

    @property
    def filters(self) -> tuple[tuple[str, str], ...]:
        """The ``(column, value)`` pairs of the filters given, in a fixed order."""
        given = {
            "workflow_id": self.workflow_id,
            "node_id": self.node_id,
            "status": self.status,
            "host": self.host,
            "root": self.root,
        }
        return tuple((column, value) for column, value in given.items() if value is not None)

    def matches(self, record: OperationRecord) -> bool:
        """Whether ``record`` passes every filter (for stores that filter in Python)."""
        return all(getattr(record, column) == value for column, value in self.filters)

    def page(self, total: int, items: Iterable[OperationRecord]) -> OperationPage:
        """The answer to this query: ``total`` matches, ``items`` the page of them."""
        return OperationPage(total=total, limit=self.limit, offset=self.offset, items=tuple(items))


def sql_filter(query: AuditQuery, placeholder: str) -> tuple[str, tuple[str, ...]]:
    """The ``WHERE`` clause (empty for no filter) and its parameters, for a SQL store.

    ``placeholder`` is the driver's parameter marker (``?``, ``%s``).
    """
    given = query.filters
    where = " AND ".join(f"{column} = {placeholder}" for column, _ in given)
    return (f" WHERE {where}" if where else ""), tuple(value for _, value in given)


def record_from_row(row: Sequence[Any]) -> OperationRecord:
    """An :class:`OperationRecord` from a row of :data:`COLUMNS`."""
    raw = row[13]
    metadata = dict(raw) if isinstance(raw, Mapping) else json.loads(raw or "{}")
    metadata.setdefault("pid", row[14])
    return OperationRecord(
        id=row[0],
        workflow_id=row[1],
        node_id=row[2],
        version_id=row[3],
        operation=row[4],
        status=row[5],
        started_at=row[6],
        finished_at=row[7],
        duration_ms=row[8],
        stdout=row[9],
        stderr=row[10],
        exit_code=row[11],
        error=row[12],
        metadata=metadata,
        host=row[15] or "",
        root=row[16] or "",
    )
