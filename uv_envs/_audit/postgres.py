"""The audit log in PostgreSQL: one database for the records of many hosts and roots.

Behaviour when the database is away (see docs/architecture.md, "Audit store"):

* Every call waits up to ``timeout`` seconds for a working connection while the
  pool reconnects in the background, then raises
  :class:`~uv_envs.AuditUnavailable` naming the database problem (never the
  password).
* ``start`` runs before an operation changes anything, so when it fails the
  environment is as before. A start whose commit was lost with the connection
  is retried with the same request id, so it never writes two rows.
* ``finish`` runs after the operation; when it fails, the outcome is kept in
  memory and written by the next call that reaches the database, and the
  error says the environment was changed. Should the process die first,
  ``recover`` on that host marks the record FAILED ("interrupted").

psycopg is imported when a log is made, so ``uv_envs`` imports without the
``postgres`` extra.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from uv_envs._errors import AuditUnavailable, InvalidInput, StorageError
from uv_envs._models import EnvKey
from uv_envs._reports import DeletedOperations, OperationPage
from uv_envs._urls import redact, scrub

from . import postgres_sql as sql
from .log import AuditOutcome, AuditQuery
from .postgres_schema import migrate

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

T = TypeVar("T")


class PostgresAuditLog:
    """The audit log in a PostgreSQL database, on a psycopg connection pool.

    Args:
        url: a ``postgresql://`` URL or libpq connection string.
        host: stamped on each record (``Settings.audit_host``).
        root: stamped on each record: the uv-envs root writing it.
        password: the password, if it is not in ``url``, ``PGPASSWORD`` or a
            ``.pgpass`` file.
        timeout: seconds a call waits for the database before
            :class:`~uv_envs.AuditUnavailable`.
        max_connections: the pool's upper size.

    The schema is created, or migrated from an older uv-envs, on first use.

    .. versionadded:: 0.2.0

    """

    def __init__(
        self,
        url: str,
        *,
        host: str = "",
        root: str = "",
        password: str | None = None,
        timeout: float = 30.0,
        max_connections: int = 8,
    ) -> None:
        try:
            import psycopg  # noqa: PLC0415 - the postgres extra is optional
            from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415
        except ImportError as exc:
            raise InvalidInput(
                "an audit URL needs the postgres extra: pip install 'uv-envs[postgres]'"
            ) from exc
        self.url = redact(url) or ""
        self.host = host
        self.root = root
        self.timeout = timeout
        self.max_connections = max_connections
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise InvalidInput(f"not a PostgreSQL URL: {self.url}") from exc
        in_url = params.pop("password", None)
        self._password = password or (str(in_url) if in_url else None)
        self._conninfo = make_conninfo("", **params)
        self._lock = threading.Lock()
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_pid = 0
        self._closer: weakref.finalize[Any, Any] | None = None
        self._schema_ready = False
        # Outcomes whose finish met an outage: written by the next call that gets through.
        self._pending: dict[int, AuditOutcome] = {}

    def __repr__(self) -> str:
        return f"PostgresAuditLog({self.url!r}, host={self.host!r}, root={self.root!r})"

    # --- connections ----------------------------------------------------------------

    def _connect_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "application_name": "uv-envs",
            "connect_timeout": max(1, min(10, int(self.timeout))),
        }
        if self._password is not None:
            kwargs["password"] = self._password
        return kwargs

    def _get_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        from psycopg_pool import ConnectionPool  # noqa: PLC0415

        with self._lock:
            # A forked child cannot use its parent's pool (its threads are gone).
            if self._pool is None or self._pool_pid != os.getpid():
                pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                    self._conninfo,
                    kwargs=self._connect_kwargs(),
                    min_size=1,
                    max_size=self.max_connections,
                    open=False,
                    # No check on checkout (a round trip per call): a dead connection
                    # fails the statement, the pool drops it, and _run retries.
                    name="uv-envs-audit",
                    timeout=self.timeout,
                )
                pool.open(wait=False)
                if self._closer is not None:
                    self._closer.detach()  # the parent's pool, after a fork: not ours to close
                # Callers such as EnvManager may never call close(): the pool still
                # closes (its threads stop) when the log is collected or Python exits.
                self._closer = weakref.finalize(self, _close_pool, pool)
                self._pool, self._pool_pid = pool, os.getpid()
            return self._pool

    def close(self) -> None:
        """Close the pool; a later call opens a new one."""
        with self._lock:
            closer, self._closer, self._pool = self._closer, None, None
        if closer is not None:
            if self._pool_pid == os.getpid():
                closer()
            else:
                closer.detach()

    def _run(self, what: str, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``work`` on a pooled connection, retrying lost connections until the timeout."""
        import psycopg  # noqa: PLC0415
        from psycopg_pool import PoolTimeout  # noqa: PLC0415

        deadline = time.monotonic() + self.timeout
        while True:
            try:
                pool = self._get_pool()
                left = max(0.05, deadline - time.monotonic())
                with pool.connection(timeout=left) as connection:
                    if not self._schema_ready:
                        self._migrate(connection)
                    if self._pending:
                        self._flush_pending(connection)
                    return work(connection)
            except (psycopg.OperationalError, PoolTimeout) as exc:
                if time.monotonic() >= deadline:
                    raise AuditUnavailable(self._unavailable(what, exc)) from None
                time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
            except psycopg.Error as exc:
                raise StorageError(
                    f"audit database {self.url}: {what}: {scrub(str(exc), self._password)}"
                ) from None

    def _unavailable(self, what: str, exc: Exception) -> str:
        """The message of an :class:`AuditUnavailable`: what failed, and why the database said."""
        import psycopg  # noqa: PLC0415
        from psycopg_pool import PoolTimeout  # noqa: PLC0415

        reason = str(exc)
        if isinstance(exc, PoolTimeout):
            # The pool only says it gave up: connect once more to learn why.
            try:
                with psycopg.connect(self._conninfo, **self._connect_kwargs()):
                    reason = f"no connection became free within {self.timeout:g} s"
            except psycopg.Error as direct:
                reason = str(direct)
        reason = scrub(reason, self._password).strip().replace("\n", " ")
        waited = f"waited {self.timeout:g} s"
        return f"audit database {self.url} unreachable ({what}, {waited}): {reason}"

    def _migrate(self, connection: psycopg.Connection[Any]) -> None:
        migrate(connection)
        self._schema_ready = True

    # --- the port -------------------------------------------------------------------

    def start(self, key: EnvKey, operation: str, metadata: Mapping[str, Any] | None = None) -> int:
        # One request id for every attempt: a retry of a start whose commit was lost
        # with the connection finds that row instead of writing a second one.
        request = uuid.uuid4().hex
        started = sql.Started(key, operation, metadata or {}, self.host, self.root, request)
        return self._run(
            f"starting the record of {operation} {key}",
            lambda connection: sql.insert_started(connection, started),
        )

    def finish(self, record_id: int, outcome: AuditOutcome) -> None:
        try:
            self._run(
                f"completing record {record_id}",
                lambda connection: sql.update(connection, record_id, outcome),
            )
        except AuditUnavailable as exc:
            with self._lock:
                self._pending[record_id] = outcome
            raise AuditUnavailable(
                f"{exc}; the operation itself finished {outcome.status}, and record {record_id} "
                "will be completed when the database is back",
                finished=str(outcome.status),
            ) from None

    def _flush_pending(self, connection: psycopg.Connection[Any]) -> None:
        with self._lock:
            pending = dict(self._pending)
        for record_id, outcome in pending.items():
            sql.update(connection, record_id, outcome)
            with self._lock:
                self._pending.pop(record_id, None)

    def query(self, query: AuditQuery) -> OperationPage:
        return self._run("reading records", lambda connection: sql.page(connection, query))

    def delete(self, workflow_id: str, node_id: str | None = None) -> DeletedOperations:
        return self._run(
            f"deleting the records of {workflow_id}",
            lambda connection: sql.delete(connection, workflow_id, node_id),
        )

    # --- copying a store in ---------------------------------------------------------

    def insert_copied(self, rows: list[tuple[Any, ...]]) -> int:
        """Insert records copied from another store; return how many were new.

        Each row is ``(request_uid, workflow_id, node_id, version_id, operation,
        status, started_at, finished_at, duration_ms, stdout, stderr,
        exit_code, error, metadata, pid, host, root)``; a row whose
        ``request_uid`` is already present is skipped, so a copy can be rerun.
        """
        return self._run("copying records", lambda connection: sql.insert_copied(connection, rows))


def _close_pool(pool: ConnectionPool[Any]) -> None:
    """Close ``pool``, handing the work to a thread of its own when run on one of the pool's.

    The cyclic garbage collector runs the finalizer of a log nobody closed on
    whichever thread happens to allocate, which may be one of the pool's own
    workers (psycopg_pool names them ``<pool name>-...``); ``close`` joins the
    workers, and a thread cannot join itself.
    """
    if threading.current_thread().name.startswith(f"{pool.name}-"):
        threading.Thread(target=pool.close, name="closing uv-envs-audit", daemon=True).start()
    else:
        pool.close()
