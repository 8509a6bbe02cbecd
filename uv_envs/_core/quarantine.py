"""Quarantine: how an env whose record cannot be read is reported, and left alone.

The record (``metadata.json``) is the only thing that says what an env is, so
an env without a readable one cannot be repaired, cleaned up or rebuilt
safely: its spec, generation and leases' meaning are unknown. It is reported
instead (status ``UNREADABLE`` with the reason, never omitted from lists), and
left exactly as it is until someone deletes it. Everything else on the root
carries on. See docs/reliability.md, "Damage stays where it happens".
"""

from __future__ import annotations

import logging
import time

from uv_envs._audit.log import FAILED, AuditLog, AuditOutcome
from uv_envs._errors import EnvironmentUnreadable
from uv_envs._models import Environment, EnvKey, EnvSpec, EnvStatus
from uv_envs._reports import StatusReport, VerifyReport
from uv_envs._store.layout import Layout
from uv_envs._store.metadata import Damage, UnreadableRecord

logger = logging.getLogger("uv_envs")


def record_of(error: EnvironmentUnreadable, layout: Layout, key: EnvKey) -> UnreadableRecord:
    """The :class:`UnreadableRecord` an error carries (one is made if it carries none)."""
    if isinstance(error.record, UnreadableRecord):
        return error.record
    path = layout.metadata_file(layout.env_dir(key))
    return UnreadableRecord(key, path, Damage.IO_ERROR, str(error))


def status_report(layout: Layout, record: UnreadableRecord) -> StatusReport:
    """What ``status`` answers for a quarantined env: which files exist, and why."""
    env_dir = layout.env_dir(record.key)
    return StatusReport(
        key=record.key,
        status=EnvStatus.UNREADABLE,
        env_path=env_dir,
        has_pyproject=(env_dir / "pyproject.toml").is_file(),
        has_uv_lock=(env_dir / "uv.lock").is_file(),
        has_venv=(env_dir / ".venv" / "pyvenv.cfg").is_file(),
        error=record.reason,
    )


def placeholder(layout: Layout, record: UnreadableRecord) -> Environment:
    """A stand-in record, so lists show the env: status UNREADABLE, the reason as ``error``.

    Nothing but the key, the path and the reason is known; the spec is empty.
    """
    return Environment(
        key=record.key,
        env_path=layout.env_dir(record.key),
        status=EnvStatus.UNREADABLE,
        spec=EnvSpec(),
        spec_hash="",
        error=record.reason,
    )


def verify_report(record: UnreadableRecord) -> VerifyReport:
    """``verify`` of a quarantined env: one problem, the reason."""
    return VerifyReport(key=record.key, problems=(record.reason,))


def report(audit: AuditLog, record: UnreadableRecord, operation: str = "recover") -> None:
    """Log a quarantined env and leave a FAILED audit row saying why (``ops`` shows it)."""
    logger.warning(
        "environment %s is quarantined: its %s; the rest of the root is served. "
        "Delete it (uv-envs delete, DeleteEnv) to free the key",
        record.key,
        record.reason,
    )
    row = audit.start(record.key, operation, {"quarantined": True, "damage": str(record.damage)})
    audit.finish(
        row,
        AuditOutcome(
            FAILED,
            error=f"quarantined: {record.reason}",
            metadata={"quarantined": True, "damage": str(record.damage), "at": time.time()},
        ),
    )
