"""The audit log in one SQLite file, safe across threads and processes.

The database runs in WAL mode, so readers never block the writer; each thread
of each process has its own connection.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from uv_envs._errors import StorageError
from uv_envs._models import EnvKey
from uv_envs._reports import DeletedOperations, OperationPage

from .log import COLUMNS, RUNNING, AuditOutcome, AuditQuery, record_from_row, sql_filter

# Seconds a connection waits for a locked database, and for setting up the file.
_OPEN_TIMEOUT = 60.0

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
    pid INTEGER NOT NULL,
    host TEXT NOT NULL DEFAULT '',
    root TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS operations_by_key ON operations (workflow_id, node_id, id);
CREATE INDEX IF NOT EXISTS operations_by_status ON operations (status, id);
"""

#: ``PRAGMA user_version`` of the current SQLite layout. Version 0 files (before
#: host and root were recorded) gain the two columns, empty in their old rows.
SQLITE_SCHEMA_VERSION = 1
_SQLITE_MIGRATIONS = {
    1: (
        "ALTER TABLE operations ADD COLUMN host TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE operations ADD COLUMN root TEXT NOT NULL DEFAULT ''",
    ),
}


def _create_private(path: Path) -> None:
    """Create ``path`` empty and owner-only (0600) unless it exists.

    The audit trail names every operation, its output and its caller; SQLite
    would create it by the umask (0644 as a rule). It gives the ``-wal`` and
    ``-shm`` files the database's own mode. An empty file is an empty database.
    A folder its group may write (a root an operator shares with a group)
    gets a database the group may write too (0660), never one others may read.
    """
    shared = path.parent.stat().st_mode & stat.S_IRWXG == stat.S_IRWXG
    mode = 0o660 if shared else 0o600
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode)
        os.fchmod(descriptor, mode)  # the umask would take the group's bits
        os.close(descriptor)


@attrs.define
class SqliteAuditLog:
    """The audit log in one SQLite file (``<root>/audit.sqlite3``).

    Args:
        path: the database file; created with its folder when missing.
        host: stamped on each record (see ``Settings.audit_host``).
        root: stamped on each record: the uv-envs root the log belongs to.

    """

    path: Path
    host: str = ""
    root: str = ""
    _local: threading.local = attrs.field(factory=threading.local, init=False)

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None and getattr(self._local, "pid", None) == os.getpid():
            return connection
        connection = self._open()
        self._local.connection = connection
        self._local.pid = os.getpid()
        return connection

    def _open(self) -> sqlite3.Connection:
        """A connection on a file set up for WAL, with the current schema.

        Several connections setting up a new file at once can be refused with
        "database is locked" without SQLite's busy wait (switching the journal
        mode is one such step), so setting up is retried for as long as a
        locked database is waited for otherwise.
        """
        deadline = time.monotonic() + _OPEN_TIMEOUT
        for attempt in itertools.count(1):
            connection = None
            try:
                self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                _create_private(self.path)
                connection = sqlite3.connect(self.path, timeout=_OPEN_TIMEOUT, isolation_level=None)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                connection.executescript(_SCHEMA)
                _migrate(connection)
            except sqlite3.OperationalError as exc:
                if connection is not None:
                    connection.close()
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise StorageError(f"cannot open the audit log {self.path}: {exc}") from exc
                time.sleep(min(0.5, 0.01 * attempt))
            except (sqlite3.Error, OSError) as exc:
                if connection is not None:
                    connection.close()
                raise StorageError(f"cannot open the audit log {self.path}: {exc}") from exc
            else:
                return connection
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count never ends

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
            " started_at, metadata, pid, host, root) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key.workflow_id,
                key.node_id,
                key.version_id,
                operation,
                RUNNING,
                time.time(),
                json.dumps(dict(metadata or {}), default=str),
                os.getpid(),
                self.host,
                self.root,
            ),
        )
        assert cursor.lastrowid is not None  # noqa: S101 - sqlite sets it after INSERT
        return cursor.lastrowid

    def finish(self, record_id: int, outcome: AuditOutcome) -> None:
        row = self._execute(
            "SELECT started_at, metadata FROM operations WHERE id = ?", (record_id,)
        )
        found = row.fetchone()
        if found is None:
            return
        merged = json.loads(found[1] or "{}")
        merged.update(outcome.metadata)
        self._execute(
            "UPDATE operations SET status = ?, finished_at = ?, duration_ms = ?, stdout = ?,"
            " stderr = ?, exit_code = ?, error = ?, metadata = ? WHERE id = ?",
            (
                outcome.status,
                outcome.finished_at,
                int((outcome.finished_at - found[0]) * 1000),
                outcome.stdout,
                outcome.stderr,
                outcome.exit_code,
                outcome.error,
                json.dumps(merged, default=str),
                record_id,
            ),
        )

    def query(self, query: AuditQuery) -> OperationPage:
        where, parameters = sql_filter(query, "?")
        total = self._execute(f"SELECT COUNT(*) FROM operations{where}", parameters)  # noqa: S608 - columns are fixed names
        count = int(total.fetchone()[0])
        rows = self._execute(
            f"SELECT {COLUMNS} FROM operations{where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
            (*parameters, query.limit, query.offset),
        ).fetchall()
        return query.page(count, (record_from_row(row) for row in rows))

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


def _migrate(connection: sqlite3.Connection) -> None:
    """Bring a file written by an older uv-envs to :data:`SQLITE_SCHEMA_VERSION`."""
    if connection.execute("PRAGMA user_version").fetchone()[0] >= SQLITE_SCHEMA_VERSION:
        return
    connection.execute("BEGIN IMMEDIATE")  # one process migrates; the others wait, then see it
    try:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        present = {row[1] for row in connection.execute("PRAGMA table_info(operations)")}
        for number in range(version + 1, SQLITE_SCHEMA_VERSION + 1):
            for statement in _SQLITE_MIGRATIONS[number]:
                # A file created at this version already has the columns (see _SCHEMA).
                column = statement.split("ADD COLUMN ")[1].split()[0]
                if column not in present:
                    connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {SQLITE_SCHEMA_VERSION}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
