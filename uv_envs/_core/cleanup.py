"""Cleanup: envs and generations nobody used for a while, and a disk budget.

Cleanup works in two passes: envs idle longer than the idle age (and
generations retired that long ago), then, while over a disk budget, the least
recently used envs. Busy envs (an operation holds their lock), leased envs
and envs a live process uses (one ``/proc`` scan per call, see
:mod:`uv_envs._procs.liveness`) are skipped and reported; so are retired
generations a process may run from. Store entries nothing links and no
process uses, and stored locks past their age, are pruned. A floor
(``min_idle_seconds``) protects envs used more recently than it from both
passes: every door (library, CLI, gRPC, HTTP) passes its floor here, so the
refusals, the clamping and the audit record are one.
"""

from __future__ import annotations

import enum
import logging
import math
import time
from pathlib import Path
from typing import Any

import attrs

from uv_envs._bytecode.compiler import prune_shared
from uv_envs._errors import EnvironmentUnreadable, InvalidInput
from uv_envs._events import domain as events
from uv_envs._models import Environment, EnvKey
from uv_envs._procs.liveness import LiveUses
from uv_envs._reports import CleanupRemoval, CleanupReport, EnvInUse, LiveProcess
from uv_envs._store.venvs import tree_size

from .access import EnvAccess, Locked
from .operation import audited
from .reclaim import freed_bytes
from .services import Services

logger = logging.getLogger("uv_envs")


class CleanupOutcome(enum.Enum):
    """What cleanup did with one env."""

    DELETED = "deleted"
    BUSY = "busy"
    LEASED = "leased"
    IN_USE = "in_use"
    KEPT = "kept"
    GONE = "gone"
    UNREADABLE = "unreadable"


@attrs.frozen
class _Visit:
    outcome: CleanupOutcome
    pruned_generations: int = 0
    last_used: float = 0.0
    processes: tuple[LiveProcess, ...] = ()
    removal: CleanupRemoval | None = None


@attrs.frozen
class _Pass:
    """One pass over the envs: the scan it trusts, its clock, its idle age and why it deletes.

    ``dry_run``: judge as the pass would, remove and record nothing; ``planned``
    collects the envs it would delete (both passes share it).
    """

    live: LiveUses
    checked_at: float
    idle_seconds: float | None
    reason: str
    dry_run: bool = False
    planned: list[Path] = attrs.field(factory=list)


@attrs.define
class _Tally:
    deleted: list[EnvKey] = attrs.field(factory=list)
    busy: list[EnvKey] = attrs.field(factory=list)
    leased: list[EnvKey] = attrs.field(factory=list)
    unreadable: list[EnvKey] = attrs.field(factory=list)
    in_use: list[EnvInUse] = attrs.field(factory=list)
    removals: list[CleanupRemoval] = attrs.field(factory=list)
    pruned_generations: int = 0
    pruned_store_entries: int = 0
    store_entries_in_use: int = 0

    def prune_store(self, services: Services, live: LiveUses) -> None:
        removed, self.store_entries_in_use = services.venv_store.prune(keep=live.entries)
        self.pruned_store_entries += removed
        if removed:  # their bytecode may have been the last link to shared .pyc files
            prune_shared(services.layout.bytecode_dir)

    def count(self, key: EnvKey, visit: _Visit) -> None:
        self.pruned_generations += visit.pruned_generations
        if visit.removal is not None:
            self.removals.append(visit.removal)
        if visit.outcome is CleanupOutcome.IN_USE:
            self.in_use.append(EnvInUse(key, visit.processes))
        listed = {
            CleanupOutcome.DELETED: self.deleted,
            CleanupOutcome.BUSY: self.busy,
            CleanupOutcome.LEASED: self.leased,
            CleanupOutcome.UNREADABLE: self.unreadable,
        }.get(visit.outcome)
        if listed is not None:
            listed.append(key)


@attrs.frozen
class Collector:
    """Removes envs by age and disk budget (:mod:`.delete` removes one on request)."""

    services: Services
    access: EnvAccess

    def cleanup(
        self,
        idle_seconds: float | None,
        max_bytes: int | None,
        min_idle_seconds: float = 0.0,
        *,
        dry_run: bool = False,
    ) -> CleanupReport:
        _check_limits(idle_seconds, max_bytes, min_idle_seconds)
        if idle_seconds is not None and idle_seconds < min_idle_seconds:
            logger.warning(
                "cleanup asked for envs idle %g s; deleting only those idle %g s or more "
                "(the minimum idle time)",
                idle_seconds,
                min_idle_seconds,
            )
            idle_seconds = min_idle_seconds
        services = self.services
        idle = math.inf if idle_seconds is None else idle_seconds
        checked_at = time.time()
        tally = _Tally()
        # One scan for the whole call; a process that starts using an env after it is
        # not seen (a lease closes that gap: docs/reliability.md).
        live = services.liveness.snapshot()
        survivors: list[tuple[float, EnvKey]] = []
        planned: list[Path] = []
        for key in list(services.metadata.keys()):
            visit = self._visit(_Pass(live, checked_at, idle, "idle", dry_run, planned), key)
            tally.count(key, visit)
            if visit.outcome is CleanupOutcome.KEPT:
                survivors.append((visit.last_used, key))
        if not dry_run:
            tally.prune_store(services, live)
        bytes_in_use = None
        if max_bytes is not None:
            # Envs used within the floor are kept even when that leaves it over budget.
            budget = _Pass(
                live, checked_at, min_idle_seconds or None, "disk budget", dry_run, planned
            )
            bytes_in_use = self._enforce_budget(sorted(survivors), max_bytes, budget, tally)
        report = CleanupReport(
            # A dry run deletes nothing: its removals say what would go.
            deleted=() if dry_run else tuple(tally.deleted),
            skipped_busy=tuple(tally.busy),
            pruned_generations=tally.pruned_generations,
            checked_at=checked_at,
            pruned_store_entries=tally.pruned_store_entries,
            pruned_locks=0 if dry_run else services.resolution_store.prune(),
            skipped_leased=tuple(tally.leased),
            bytes_in_use=bytes_in_use,
            skipped_unreadable=tuple(tally.unreadable),
            skipped_in_use=tuple(tally.in_use),
            store_entries_in_use=tally.store_entries_in_use,
            removals=tuple(tally.removals),
            dry_run=dry_run,
        )
        if dry_run:
            return report
        services.emit(
            events.EnvironmentCleanupCompleted(
                None,
                details={
                    "deleted": [str(k) for k in report.deleted],
                    "skipped_busy": [str(k) for k in report.skipped_busy],
                    "skipped_leased": [str(k) for k in report.skipped_leased],
                    "skipped_in_use": [str(u.key) for u in report.skipped_in_use],
                },
            )
        )
        return report

    def _enforce_budget(
        self,
        by_last_use: list[tuple[float, EnvKey]],
        max_bytes: int,
        budget: _Pass,
        tally: _Tally,
    ) -> int:
        """Delete least recently used envs while over ``max_bytes``; return the bytes in use."""
        services = self.services
        env_bytes = tree_size(services.layout.envs_dir)
        bytes_in_use = env_bytes + sum(services.venv_store.sizes().values())
        for _, key in by_last_use:
            if bytes_in_use <= max_bytes:
                break
            own = tree_size(services.layout.env_dir(key))
            visit = self._visit(budget, key)
            if visit.outcome is CleanupOutcome.DELETED and budget.dry_run:
                bytes_in_use -= visit.removal.bytes if visit.removal else own
            elif visit.outcome is CleanupOutcome.DELETED:
                tally.prune_store(services, budget.live)
                env_bytes -= own
                bytes_in_use = env_bytes + sum(services.venv_store.sizes().values())
            tally.count(key, attrs.evolve(visit, pruned_generations=0))
        return bytes_in_use

    def _visit(self, run: _Pass, key: EnvKey) -> _Visit:
        """Delete one env if idle (any age when ``run.idle_seconds`` is None) and unused."""
        with self.access.locked_if_free(key) as token:
            if token is None:
                return _Visit(CleanupOutcome.BUSY)
            return self._visit_locked(run, token)

    def _visit_locked(self, run: _Pass, token: Locked) -> _Visit:
        services, key = self.services, token.key
        try:
            environment = self.access.current(token)
        except EnvironmentUnreadable:
            return _Visit(CleanupOutcome.UNREADABLE)  # quarantined: left as it is, reported
        if environment is None:
            return _Visit(CleanupOutcome.GONE)
        pinned = set(services.leases.live(key))
        last_used = services.dirs.last_used(environment)
        idle_seconds = run.idle_seconds
        retired_before = math.inf if idle_seconds is None else run.checked_at - idle_seconds
        pruned = self._prune_generations(
            environment, retired_before, pinned, run.live, dry_run=run.dry_run
        )
        if idle_seconds is not None and run.checked_at - last_used <= idle_seconds:
            return _Visit(CleanupOutcome.KEPT, pruned, last_used)
        if pinned:
            return _Visit(CleanupOutcome.LEASED, pruned, last_used)
        processes = run.live.env(key)
        if processes:
            details = {"reason": run.reason, "outcome": "skipped_in_use"}
            if not run.dry_run:
                with audited(services, key, "cleanup", {**details, **_pids(processes)}):
                    pass  # nothing removed; the record says who kept the env
            return _Visit(CleanupOutcome.IN_USE, pruned, last_used, processes)
        removal = CleanupRemoval(
            key,
            run.reason,
            freed_bytes(services.layout.store_dir, environment.env_path, run.planned),
            run.checked_at - last_used,
        )
        if run.dry_run:
            # Its shared venvs count as freed once their last user is planned too.
            run.planned.append(environment.env_path)
        else:
            # The age it was judged by goes on record: None is "any age" (the disk budget).
            judged = {"reason": run.reason, "outcome": "deleted", "idle_seconds": idle_seconds}
            with audited(services, key, "cleanup", judged):
                services.discard(key)
            services.emit(events.EnvironmentDeleted(key, details={"reason": run.reason}))
        return _Visit(CleanupOutcome.DELETED, pruned, last_used, removal=removal)

    def _prune_generations(
        self,
        environment: Environment,
        retired_before: float,
        pinned: set[int],
        live: LiveUses,
        *,
        dry_run: bool,
    ) -> int:
        drop = [
            r
            for r in environment.retired
            if r.retired_at < retired_before
            and r.generation not in pinned
            and not live.generation(environment.key, r.generation, r.retired_at)
        ]
        if not drop or dry_run:
            return len(drop)
        keep = tuple(r for r in environment.retired if r not in drop)
        self.services.metadata.save(attrs.evolve(environment, retired=keep))
        for retired in drop:
            self.services.dirs.remove_generation(environment.env_path, retired.generation)
        return len(drop)


def _pids(processes: tuple[LiveProcess, ...]) -> dict[str, list[Any]]:
    """The audit metadata naming the processes that use an env."""
    return {
        "pids": [p.pid for p in processes],
        "processes": [{"pid": p.pid, "description": p.description} for p in processes],
    }


def _check_limits(
    idle_seconds: float | None, max_bytes: int | None, min_idle_seconds: float
) -> None:
    """Refuse limits cleanup cannot honour; the one refusal text every door shows."""
    if idle_seconds is None and max_bytes is None:
        raise InvalidInput(
            "cleanup needs idle_seconds, max_bytes or both",
            fields=("idle_seconds", "max_bytes"),
        )
    if not _is_limit(idle_seconds, float):
        raise InvalidInput(
            f"idle_seconds must be a number >= 0, not {idle_seconds!r}", fields=("idle_seconds",)
        )
    if not _is_limit(min_idle_seconds, float):
        raise InvalidInput(
            f"min_idle_seconds must be a number >= 0, not {min_idle_seconds!r}",
            fields=("min_idle_seconds",),
        )
    if not _is_limit(max_bytes, int):
        raise InvalidInput(
            f"max_bytes must be a whole number >= 0, not {max_bytes!r}", fields=("max_bytes",)
        )


def _is_limit(value: object, kind: type[float | int]) -> bool:
    """None, or a number of ``kind`` >= 0 (an int counts as a float).

    A bool is an int to Python; as a limit it is a mistake. NaN fails every
    comparison, so it would otherwise read as "all idle".
    """
    if value is None:
        return True
    accepted = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, accepted):
        return False
    return not math.isnan(value) and value >= 0
