"""Copy a root's SQLite audit trail into a PostgreSQL one: the one-shot move to a fleet store."""

from __future__ import annotations

import json

import attrs

from .log import MAX_PAGE, AuditLog, AuditQuery
from .postgres import PostgresAuditLog


@attrs.frozen
class CopyReport:
    """What :func:`copy_audit` did: records read, and how many of them were new to the target."""

    read: int
    copied: int

    @property
    def already_there(self) -> int:
        """Records a previous copy had written (a copy can be rerun safely)."""
        return self.read - self.copied


def copy_audit(source: AuditLog, target: PostgresAuditLog, *, host: str, root: str) -> CopyReport:
    """Copy every record of ``source`` into ``target``, oldest first.

    Records written before host and root were recorded get ``host`` and
    ``root``. Each copied record remembers where it came from, so running the
    copy again adds only what is new. Stop the writers of ``source`` first:
    records written during the copy may be missed (run it again after).
    """
    total = source.query(AuditQuery(limit=0)).total
    read = copied = 0
    high = total
    while high > 0:
        low = max(0, high - MAX_PAGE)
        page = source.query(AuditQuery(limit=high - low, offset=low))
        rows = []
        for record in reversed(page.items):
            record_host, record_root = record.host or host, record.root or root
            pid = record.metadata.get("pid")
            rows.append(
                (
                    f"copy:{record_host}:{record_root}:{record.id}",
                    record.workflow_id,
                    record.node_id,
                    record.version_id,
                    record.operation,
                    record.status,
                    record.started_at,
                    record.finished_at,
                    record.duration_ms,
                    record.stdout,
                    record.stderr,
                    record.exit_code,
                    record.error,
                    json.dumps(dict(record.metadata), default=str),
                    pid if isinstance(pid, int) else 0,
                    record_host,
                    record_root,
                )
            )
        read += len(rows)
        copied += target.insert_copied(rows)
        high = low
    return CopyReport(read=read, copied=copied)
