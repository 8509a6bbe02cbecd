"""Pick the audit store the settings ask for: PostgreSQL for a URL, else SQLite in the root."""

from __future__ import annotations

from pathlib import Path

from uv_envs._errors import InvalidInput
from uv_envs._settings import Settings
from uv_envs._store.layout import Layout
from uv_envs._urls import is_postgres, read_password_file, redact

from .log import AuditLog
from .postgres import PostgresAuditLog
from .sqlite import SqliteAuditLog


def open_audit_log(settings: Settings, layout_or_root: Layout | Path) -> AuditLog:
    """The audit log of one root: ``settings.audit_url``'s database, or ``<root>/audit.sqlite3``.

    Records are stamped with ``settings.audit_host`` and the root, so several
    roots can share one database. Nothing connects yet: a PostgreSQL log
    connects, and creates or migrates its schema, on first use.

    Raises:
        InvalidInput: the URL is not ``postgresql://``, the password file is
            unreadable, or the ``postgres`` extra is not installed.

    .. versionadded:: 0.2.0

    """
    layout = layout_or_root if isinstance(layout_or_root, Layout) else Layout(layout_or_root)
    root = str(layout.root)
    url = settings.audit_url
    if not url:
        return SqliteAuditLog(layout.audit_db, host=settings.audit_host, root=root)
    if not is_postgres(url):
        raise InvalidInput(f"the audit URL must start with postgresql://, not {redact(url)!r}")
    password = None
    if settings.audit_password_file is not None:
        password = read_password_file(settings.audit_password_file)
    return PostgresAuditLog(
        url,
        host=settings.audit_host,
        root=root,
        password=password,
        timeout=settings.audit_timeout,
    )
