"""The PostgreSQL audit schema: its versions, their statements, and the migration.

The schema table records each applied version. Starting against an older
schema applies the missing versions in one transaction; against a newer one
raises :class:`~uv_envs.AuditSchemaTooNew` and writes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from uv_envs._errors import AuditSchemaTooNew

if TYPE_CHECKING:
    import psycopg

TABLE = "uv_envs_operations"
SCHEMA_TABLE = "uv_envs_schema"
# pg_advisory_xact_lock key: one process at a time creates or migrates the schema.
_SCHEMA_LOCK = 0x75765F656E7673  # "uv_envs"

#: Each version's statements, applied in order inside one transaction.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        f"""CREATE TABLE {TABLE} (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            workflow_id text NOT NULL,
            node_id text NOT NULL,
            version_id text NOT NULL,
            operation text NOT NULL,
            status text NOT NULL,
            started_at double precision NOT NULL,
            finished_at double precision,
            duration_ms integer,
            stdout text NOT NULL DEFAULT '',
            stderr text NOT NULL DEFAULT '',
            exit_code integer,
            error text,
            metadata jsonb NOT NULL DEFAULT '{{}}',
            pid integer NOT NULL,
            host text NOT NULL DEFAULT '',
            root text NOT NULL DEFAULT ''
        )""",
        f"CREATE INDEX {TABLE}_by_key ON {TABLE} (workflow_id, node_id, id)",
        f"CREATE INDEX {TABLE}_by_status ON {TABLE} (status, id)",
    ),
    2: (
        # The id a client gives its insert, so retrying a start never writes two rows.
        f"ALTER TABLE {TABLE} ADD COLUMN request_uid text",
        f"CREATE UNIQUE INDEX {TABLE}_by_request ON {TABLE} (request_uid)",
        # A fleet's pages are filtered by host or root; newest first is id order.
        f"CREATE INDEX {TABLE}_by_host ON {TABLE} (host, id)",
        f"CREATE INDEX {TABLE}_by_root ON {TABLE} (root, id)",
        # "what failed on host X" and recovery's "RUNNING on my host".
        f"CREATE INDEX {TABLE}_by_host_status ON {TABLE} (host, status, id)",
    ),
}
SCHEMA_VERSION = max(MIGRATIONS)


def migrate(connection: psycopg.Connection[Any]) -> None:
    """Create the schema, or migrate an older one; refuse a newer one.

    One process at a time (an advisory lock), all in one transaction.
    """
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = connection.execute(f"SELECT max(version) FROM {SCHEMA_TABLE}").fetchone()  # noqa: S608
        found = int(row[0]) if row and row[0] is not None else 0
        if found > SCHEMA_VERSION:
            raise AuditSchemaTooNew(found, SCHEMA_VERSION)
        for version in range(found + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[version]:
                connection.execute(statement)  # fixed DDL above
            connection.execute(
                f"INSERT INTO {SCHEMA_TABLE} (version) VALUES (%s)",  # noqa: S608
                (version,),
            )
