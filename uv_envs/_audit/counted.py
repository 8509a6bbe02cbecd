"""An audit log that counts each operation as its record is finished, for ``EnvManager.stats``.

Every operation a manager runs writes one audit record, RUNNING when it
begins and finished once with its outcome (:mod:`uv_envs._core.operation`,
recovery, quarantine): counting at ``finish`` counts each one exactly once,
failures included, by the record's operation name and outcome, with how long
it ran here. Records this process did not start (a crashed process's, marked
by recovery) are not this manager's work and are not counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import attrs

from uv_envs._events.tallies import Tally
from uv_envs._models import EnvKey
from uv_envs._reports import DeletedOperations, OperationPage

from .log import AuditLog, AuditOutcome, AuditQuery


@attrs.define
class CountedAuditLog:
    """``store`` with each finished operation added to ``tally`` by (operation, outcome)."""

    store: AuditLog
    tally: Tally
    # record id -> (operation name, monotonic start) of the operations running here.
    _running: dict[int, tuple[str, float]] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def start(self, key: EnvKey, operation: str, metadata: Mapping[str, Any] | None = None) -> int:
        record_id = self.store.start(key, operation, metadata)
        with self._lock:
            self._running[record_id] = (operation, time.monotonic())
        self.tally.began()
        return record_id

    def finish(self, record_id: int, outcome: AuditOutcome) -> None:
        with self._lock:
            begun = self._running.pop(record_id, None)
        if begun is not None:
            # Counted before the store writes: an operation whose record cannot be
            # written (the database is away) still ended, and ended this way.
            operation, started = begun
            self.tally.ended((operation, outcome.status.value), time.monotonic() - started)
        self.store.finish(record_id, outcome)

    def query(self, query: AuditQuery) -> OperationPage:
        return self.store.query(query)

    def delete(self, workflow_id: str, node_id: str | None = None) -> DeletedOperations:
        return self.store.delete(workflow_id, node_id)

    def close(self) -> None:
        self.store.close()
