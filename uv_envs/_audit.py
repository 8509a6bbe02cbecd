"""The audit log: one SQLite row per operation, safe across threads and processes.

Each operation writes a RUNNING row when it starts and completes it with its
outcome, so an operation interrupted by a crash stays visible (recovery marks
it FAILED). The database runs in WAL mode, so readers never block the writer;
each thread of each process has its own connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs

from ._errors import StorageError
from ._models import DeletedOperations, EnvKey, OperationPage, OperationRecord, OperationStatus

RUNNING = OperationStatus.RUNNING
SUCCESS = OperationStatus.SUCCESS
FAILED = OperationStatus.FAILED

MAX_OUTPUT = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    version_id TEXT NOT NULL,
    operation TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL,
    duration_ms INTEGER,
    stdout TEXT NOT NULL DEFAULT '',
    stderr TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    error TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    pid INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS operations_by_key ON operations (workflow_id, node_id, id);
CREATE INDEX IF NOT EXISTS operations_by_status ON operations (status, id);
"""


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
    ) -> OperationPage:
        """Records newest first, filtered and paged."""
        ...

    def delete(self, workflow_id: str, node_id: str | None = None) -> DeletedOperations:
        """Remove the records of a workflow, or of one of its nodes."""
        ...

    def close(self) -> None:
        """Release what the log holds open (connections); it reopens on next use."""
        ...


def _clip(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT else text[-MAX_OUTPUT:]


@attrs.define
class SqliteAuditLog:
    """The audit log in one SQLite file (``<root>/audit.sqlite3``)."""

    path: Path
    _local: threading.local = attrs.field(factory=threading.local, init=False)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) == os.getpid():
            return connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open the audit log {self.path}: {exc}") from exc
        self._local.connection = connection
        self._local.pid = os.getpid()
        return connection

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._connection().execute(sql, parameters)
        except sqlite3.Error as exc:
            raise StorageError(f"audit log {self.path}: {exc}") from exc

    def start(self, key: EnvKey, operation: str, metadata: Mapping[str, Any] | None = None) -> int:
        cursor = self._execute(
            "INSERT INTO operations (workflow_id, node_id, version_id, operation, status,"
            " started_at, metadata, pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.workflow_id,
                key.node_id,
                key.version_id,
                operation,
                RUNNING,
                time.time(),
                json.dumps(dict(metadata or {}), default=str),
                os.getpid(),
            ),
        )
        assert cursor.lastrowid is not None  # noqa: S101 - sqlite sets it after INSERT
        return cursor.lastrowid

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
        now = time.time()
        row = self._execute(
            "SELECT started_at, metadata FROM operations WHERE id = ?", (record_id,)
        )
        found = row.fetchone()
        if found is None:
            return
        merged = json.loads(found[1] or "{}")
        merged.update(metadata or {})
        self._execute(
            "UPDATE operations SET status = ?, finished_at = ?, duration_ms = ?, stdout = ?,"
            " stderr = ?, exit_code = ?, error = ?, metadata = ? WHERE id = ?",
            (
                status,
                now,
                int((now - found[0]) * 1000),
                _clip(stdout),
                _clip(stderr),
                exit_code,
                error,
                json.dumps(merged, default=str),
                record_id,
            ),
        )

    def query(
        self,
        *,
        workflow_id: str | None = None,
        node_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> OperationPage:
        limit = max(0, min(limit, 1000))
        offset = max(0, offset)
        clauses: list[str] = []
        parameters: list[Any] = []
        for column, value in (
            ("workflow_id", workflow_id),
            ("node_id", node_id),
            ("status", status),
        ):
            if value:
                clauses.append(f"{column} = ?")
                parameters.append(value)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        total = self._execute(f"SELECT COUNT(*) FROM operations{where}", tuple(parameters))  # noqa: S608 - columns are fixed above
        count = int(total.fetchone()[0])
        rows = self._execute(
            "SELECT id, workflow_id, node_id, version_id, operation, status, started_at,"  # noqa: S608
            " finished_at, duration_ms, stdout, stderr, exit_code, error, metadata, pid"
            f" FROM operations{where} ORDER BY id DESC LIMIT ? OFFSET ?",
            (*parameters, limit, offset),
        ).fetchall()
        items = tuple(_record(row) for row in rows)
        return OperationPage(total=count, limit=limit, offset=offset, items=items)

    def delete(self, workflow_id: str, node_id: str | None = None) -> DeletedOperations:
        parameters: tuple[str, ...]
        if node_id:
            where, parameters = "workflow_id = ? AND node_id = ?", (workflow_id, node_id)
        else:
            where, parameters = "workflow_id = ?", (workflow_id,)
        connection = self._connection()
        try:
            connection.execute("BEGIN IMMEDIATE")
            nodes = [
                row[0]
                for row in connection.execute(
                    f"SELECT DISTINCT node_id FROM operations WHERE {where} ORDER BY node_id",  # noqa: S608
                    parameters,
                )
            ]
            deleted = connection.execute(
                f"DELETE FROM operations WHERE {where}",  # noqa: S608 - fixed clause
                parameters,
            ).rowcount
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            connection.execute("ROLLBACK") if connection.in_transaction else None
            raise StorageError(f"audit log {self.path}: {exc}") from exc
        return DeletedOperations(
            workflow_id=workflow_id,
            node_id=node_id or "",
            deleted_count=deleted,
            deleted_node_ids=tuple(nodes),
        )


def _record(row: tuple[Any, ...]) -> OperationRecord:
    metadata = json.loads(row[13] or "{}")
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
    )
