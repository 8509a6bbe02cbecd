"""The ``AuditLog`` port: one record per operation, and what every store shares.

Each operation writes a RUNNING record when it starts and completes it with its
outcome, so an operation interrupted by a crash stays visible (recovery marks
it FAILED). Every record carries the host and root it came from, so one shared
store (:mod:`.postgres`) can hold many; :func:`~uv_envs.open_audit_log` picks
the store from the settings (:mod:`.sqlite` by default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from uv_envs._models import (
    DeletedOperations,
    EnvKey,
    OperationPage,
    OperationRecord,
    OperationStatus,
)

RUNNING = OperationStatus.RUNNING
SUCCESS = OperationStatus.SUCCESS
FAILED = OperationStatus.FAILED

MAX_OUTPUT = 64 * 1024

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

    def finish(
        self,
        record_id: int,
        status: OperationStatus,
        *,
        stdout: str = "",
        stderr: str = "",
        exit_code: int | None = None,
        error: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Complete a record with the outcome."""
        ...

    def query(
        self,
        *,
        workflow_id: str | None = None,
        node_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        host: str | None = None,
        root: str | None = None,
    ) -> OperationPage:
        """Records newest first, filtered and paged (at most 1000 a page)."""
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


def page_bounds(limit: int, offset: int) -> tuple[int, int]:
    """``limit`` in ``0..1000`` and ``offset >= 0``, as every store pages."""
    return max(0, min(limit, 1000)), max(0, offset)


def filters(**values: str | None) -> list[tuple[str, str]]:
    """The ``(column, value)`` pairs of the filters given (empty means no filter)."""
    return [(column, value) for column, value in values.items() if value]


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
