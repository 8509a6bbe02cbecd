"""The statements of the PostgreSQL audit log: one function per call of the port.

Each runs on a connection it is given; :class:`.postgres.PostgresAuditLog`
owns the pool, the retries and what happens while the database is away.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from uv_envs._models import EnvKey
from uv_envs._reports import DeletedOperations, OperationPage

from . import log as _audit
from .log import AuditOutcome, AuditQuery
from .postgres_schema import TABLE

if TYPE_CHECKING:
    import psycopg

_SELECT = f"SELECT {_audit.COLUMNS} FROM {TABLE}"  # noqa: S608 - fixed names


def _text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; uv's output never should, but a node's might.
    return value.replace("\x00", "\ufffd")


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), default=str).replace("\\u0000", "\\ufffd")


@attrs.frozen
class Started:
    """The row a start writes, made once so that every retry writes the same one."""

    key: EnvKey
    operation: str
    metadata: Mapping[str, Any]
    host: str
    root: str
    request: str
    started_at: float = attrs.field(factory=time.time)
    pid: int = attrs.field(factory=os.getpid)


def insert_started(connection: psycopg.Connection[Any], started: Started) -> int:
    """Insert the RUNNING record of ``started``, or find it if a lost attempt did; its id."""
    key = started.key
    row = connection.execute(
        f"INSERT INTO {TABLE} (workflow_id, node_id, version_id, operation, status,"  # noqa: S608
        " started_at, metadata, pid, host, root, request_uid)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)"
        " ON CONFLICT (request_uid) DO NOTHING RETURNING id",
        (
            key.workflow_id,
            key.node_id,
            key.version_id,
            started.operation,
            str(_audit.RUNNING),
            started.started_at,
            _json(started.metadata),
            started.pid,
            started.host,
            started.root,
            started.request,
        ),
    ).fetchone()
    if row is None:  # a retry of an insert that did commit
        row = connection.execute(
            f"SELECT id FROM {TABLE} WHERE request_uid = %s",  # noqa: S608
            (started.request,),
        ).fetchone()
    assert row is not None  # noqa: S101 - inserted above or by the lost attempt
    return int(row[0])


def update(connection: psycopg.Connection[Any], record_id: int, outcome: AuditOutcome) -> None:
    """Write ``outcome`` into record ``record_id``."""
    error = None if outcome.error is None else _text(outcome.error)
    connection.execute(
        f"UPDATE {TABLE} SET status = %s, finished_at = %s,"  # noqa: S608
        " duration_ms = floor((%s - started_at) * 1000)::integer, stdout = %s, stderr = %s,"
        " exit_code = %s, error = %s, metadata = metadata || %s::jsonb WHERE id = %s",
        (
            str(outcome.status),
            outcome.finished_at,
            outcome.finished_at,
            _text(outcome.stdout),
            _text(outcome.stderr),
            outcome.exit_code,
            error,
            _json(outcome.metadata),
            record_id,
        ),
    )


def page(connection: psycopg.Connection[Any], query: AuditQuery) -> OperationPage:
    """The page of records ``query`` asks for, newest first, and how many match."""
    where, parameters = _audit.sql_filter(query, "%s")
    with connection.transaction():  # the count and the page from one snapshot
        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        counted = connection.execute(
            f"SELECT count(*) FROM {TABLE}{where}",  # noqa: S608 - fixed names
            parameters,
        ).fetchone()
        rows = connection.execute(
            f"{_SELECT}{where} ORDER BY id DESC LIMIT %s OFFSET %s",
            (*parameters, query.limit, query.offset),
        ).fetchall()
    total = int(counted[0]) if counted else 0
    return query.page(total, (_audit.record_from_row(row) for row in rows))


def delete(
    connection: psycopg.Connection[Any], workflow_id: str, node_id: str | None
) -> DeletedOperations:
    """Remove the records of a workflow, or of one node of it."""
    parameters: tuple[str, ...]
    if node_id:
        where, parameters = "workflow_id = %s AND node_id = %s", (workflow_id, node_id)
    else:
        where, parameters = "workflow_id = %s", (workflow_id,)
    with connection.transaction():
        rows = connection.execute(
            f"DELETE FROM {TABLE} WHERE {where} RETURNING node_id",  # noqa: S608
            parameters,
        ).fetchall()
    return DeletedOperations(
        workflow_id=workflow_id,
        node_id=node_id or "",
        deleted_count=len(rows),
        deleted_node_ids=tuple(sorted({row[0] for row in rows})),
    )


def insert_copied(connection: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> int:
    """Insert copied rows (see ``PostgresAuditLog.insert_copied``); how many were new."""
    with connection.transaction(), connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {TABLE} (request_uid, workflow_id, node_id, version_id,"  # noqa: S608
            " operation, status, started_at, finished_at, duration_ms, stdout, stderr,"
            " exit_code, error, metadata, pid, host, root) VALUES (%s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s)"
            " ON CONFLICT (request_uid) DO NOTHING",
            [_clean_copied(row) for row in rows],
        )
        # executemany sums the rows each insert wrote: skipped ones count 0.
        return max(0, cursor.rowcount)


def _clean_copied(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(_text(value) if isinstance(value, str) else value for value in row)
