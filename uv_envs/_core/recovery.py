"""Repairs what dead processes left: under one env's lock, and over the whole root.

Whoever holds an env's lock and finds unfinished work knows its owner is dead
(the operating system released its lock). The table in docs/architecture.md
("Recovery") lists what is found and what is done; each repair is written to
the audit log as a ``recover`` record.

:class:`EnvRecovery` repairs one env whose lock the caller holds: it is the
:class:`.access.Reconciler` that :class:`.access.EnvAccess` runs before handing
out a record. :class:`RootRecovery` sweeps the whole root, taking each free
lock through that ``EnvAccess`` (the only place that makes a lock token).
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from uv_envs._audit.log import AuditOutcome, AuditQuery
from uv_envs._errors import EnvironmentUnreadable
from uv_envs._events import domain as events
from uv_envs._locks import locks
from uv_envs._models import Environment, EnvKey, EnvStatus, OperationStatus
from uv_envs._uv.orphans import stop_processes_in

from . import quarantine
from .access import USABLE, EnvAccess, Locked
from .services import Services


@attrs.frozen
class EnvRecovery:
    """Crash recovery of one env, under its lock."""

    services: Services

    def reconcile(self, token: Locked, repairs: list[str] | None = None) -> Environment | None:
        """The env's record after repairing what a dead process left.

        Stops uv processes a dead creator started, removes folders, rewrites
        metadata; each repair is appended to ``repairs`` and audited.
        """
        services, key = self.services, token.key
        repairs = [] if repairs is None else repairs
        env_dir = services.layout.env_dir(key)
        environment = services.metadata.load(key)
        if environment is None:
            if env_dir.exists():
                services.discard(key)
                repairs.append("removed a folder without metadata")
            return None
        if environment.status is EnvStatus.CREATING:
            self._roll_back_create(key, env_dir)
            repairs.append("rolled back an interrupted create")
            return None
        found = len(repairs)
        repairs += [f"removed temp file {n}" for n in services.metadata.remove_temporaries(key)]
        repairs += [f"removed temp file {n}" for n in services.dirs.remove_temporaries(env_dir)]
        if environment.pending_generation is not None:
            pending = services.layout.generation_dir(env_dir, environment.pending_generation)
            stop_processes_in(pending)
            services.dirs.remove_generation(env_dir, environment.pending_generation)
            repairs.append(f"removed half-built generation {environment.pending_generation}")
            environment = attrs.evolve(environment, pending_generation=None)
            services.metadata.save(environment)
        if environment.status in USABLE:
            self._repair_generations(environment, repairs)
        if len(repairs) > found:
            record = services.audit.start(key, "recover")
            outcome = AuditOutcome(OperationStatus.SUCCESS, metadata={"repairs": repairs[found:]})
            services.audit.finish(record, outcome)
        return environment

    def _roll_back_create(self, key: EnvKey, env_dir: Path) -> None:
        services = self.services
        stop_processes_in(env_dir)  # a uv the dead creator started
        record = services.audit.start(key, "recover", {"found": "CREATING"})
        services.discard(key)
        outcome = AuditOutcome(OperationStatus.SUCCESS, metadata={"action": "rolled back create"})
        services.audit.finish(record, outcome)
        services.emit(
            events.EnvironmentCreationFailed(
                key, details={"error": "the creating process died; rolled back"}
            )
        )

    def _repair_generations(self, environment: Environment, repairs: list[str]) -> None:
        dirs, env_dir = self.services.dirs, environment.env_path
        if not dirs.points_at(env_dir, environment.generation):
            dirs.point_current(env_dir, environment.generation)
            repairs.append(f"re-pointed current at generation {environment.generation}")
        known = {environment.generation, *(r.generation for r in environment.retired)}
        for number in dirs.generation_numbers(env_dir):
            if number not in known:
                dirs.remove_generation(env_dir, number)
                repairs.append(f"removed stray generation {number}")


@attrs.frozen
class RootRecovery:
    """Crash recovery of a whole root: every env nobody works on, then the shared debris."""

    services: Services
    access: EnvAccess
    env_recovery: EnvRecovery

    def recover_root(self) -> list[EnvKey]:
        """Repair every env whose lock is free, then the root's shared debris."""
        services = self.services
        repaired: list[EnvKey] = []
        for key in sorted({*services.metadata.keys(), *services.layout.keys_on_disk()}):
            # is_free first: taking the lock would re-enter one this thread holds.
            if not locks.is_free(services.layout.lock_file(key)):
                continue  # a live operation owns it
            with self.access.locked_if_free(key) as token:
                if token is None:
                    continue
                try:
                    repairs: list[str] = []
                    self.env_recovery.reconcile(token, repairs)
                    if repairs:
                        repaired.append(key)
                except EnvironmentUnreadable as exc:
                    # Quarantined: reported (log, audit row), left as it is; recovery goes on.
                    record = quarantine.record_of(exc, services.layout, key)
                    quarantine.report(services.audit, record)
        services.dirs.empty_trash()
        services.venv_store.remove_incomplete()
        services.resolution_store.remove_temporaries()
        self._close_dead_records()
        return repaired

    def _close_dead_records(self) -> None:
        audit, offset = self.services.audit, 0
        while True:
            page = audit.query(AuditQuery(status=OperationStatus.RUNNING, limit=500, offset=offset))
            if not page.items:
                return
            for record in page.items:
                pid = record.metadata.get("pid")
                # In a shared audit database a pid means something only on its own host.
                elsewhere = record.host and (record.host, record.root) != (
                    self.services.settings.audit_host,
                    str(self.services.settings.root),
                )
                if isinstance(pid, int) and not elsewhere and not _pid_alive(pid):
                    died = AuditOutcome(
                        OperationStatus.FAILED, error="interrupted: the process died"
                    )
                    audit.finish(record.id, died)
                else:
                    offset += 1


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
