"""Fakes that record what the core told them: events, audit records, bytecode jobs."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from uv_envs._audit.log import AuditOutcome, AuditQuery
from uv_envs._bytecode.compiler import CompileJob
from uv_envs._events.domain import DomainEvent
from uv_envs._models import EnvKey, OperationStatus
from uv_envs._reports import DeletedOperations, OperationPage, OperationRecord


@attrs.define
class RecordingPublisher:
    """An event publisher that keeps every event, in order."""

    events: list[DomainEvent] = attrs.field(factory=list)

    def __call__(self, event: DomainEvent) -> None:
        self.events.append(event)

    @property
    def names(self) -> list[str]:
        return [event.name for event in self.events]


@attrs.define
class RecordingCompiler:
    """A bytecode compiler that only keeps the jobs it is given, until :meth:`run_all`.

    Lets a test see that a create returns before its venv is compiled, then
    compile it: ``run_all`` runs each job's real worker, in the venv's
    interpreter, and returns the outcomes it printed.
    """

    jobs: list[CompileJob] = attrs.field(factory=list)

    def submit(self, job: CompileJob) -> None:
        self.jobs.append(job)

    def run_all(self) -> list[str]:
        jobs, self.jobs = self.jobs, []
        return [
            subprocess.run(job.argv(), capture_output=True, text=True, check=True).stdout.strip()
            for job in jobs
        ]


@attrs.define
class InMemoryAuditLog:
    """The :class:`~uv_envs.AuditLog` port in a list, for one process.

    ``host`` and ``root`` are stamped on each record, as the real stores do;
    logs given the same ``records`` list share it, like roots sharing a database.
    """

    records: list[OperationRecord] = attrs.field(factory=list)
    host: str = ""
    root: str = ""
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def start(self, key: EnvKey, operation: str, metadata: Mapping[str, Any] | None = None) -> int:
        with self._lock:
            record = OperationRecord(
                id=max((r.id for r in self.records), default=0) + 1,
                workflow_id=key.workflow_id,
                node_id=key.node_id,
                version_id=key.version_id,
                operation=operation,
                status=OperationStatus.RUNNING,
                started_at=time.time(),
                metadata={**_as_json(metadata), "pid": os.getpid()},
                host=self.host,
                root=self.root,
            )
            self.records.append(record)
            return record.id

    def finish(self, record_id: int, outcome: AuditOutcome) -> None:
        with self._lock:
            index = next((i for i, r in enumerate(self.records) if r.id == record_id), None)
            if index is None:
                return
            record = self.records[index]
            self.records[index] = attrs.evolve(
                record,
                status=outcome.status,
                finished_at=outcome.finished_at,
                duration_ms=int((outcome.finished_at - record.started_at) * 1000),
                stdout=outcome.stdout,
                stderr=outcome.stderr,
                exit_code=outcome.exit_code,
                error=outcome.error,
                metadata={**record.metadata, **_as_json(outcome.metadata)},
            )

    def query(self, query: AuditQuery) -> OperationPage:
        with self._lock:
            found = [r for r in reversed(self.records) if query.matches(r)]
        return query.page(len(found), found[query.offset : query.offset + query.limit])

    def delete(self, workflow_id: str, node_id: str | None = None) -> DeletedOperations:
        with self._lock:
            gone = [
                r
                for r in self.records
                if r.workflow_id == workflow_id and (not node_id or r.node_id == node_id)
            ]
            self.records[:] = [r for r in self.records if r not in gone]
        nodes = tuple(sorted({r.node_id for r in gone}))
        return DeletedOperations(workflow_id, node_id or "", len(gone), nodes)

    def close(self) -> None:
        """Nothing to release."""


def _as_json(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    # What the real stores read back: values JSON cannot hold come back as text.
    return dict(json.loads(json.dumps(dict(metadata or {}), default=str)))
