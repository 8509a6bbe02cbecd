"""Delete: one env leaves the root on request; an env in use is withdrawn, then removed.

Processes are found by one ``/proc`` scan under the env's lock (see
:mod:`uv_envs._procs.liveness`). An env a live lease or process holds is not
refused: its record is marked ``DELETING`` on disk at once (no hand-out
serves it, a create of its key builds a fresh generation), and the
:class:`Reaper` removes it once the last holder exits. The mark is on disk, so
a manager opened later on the root (a restarted server) finishes the delete;
cleanup removes a ``DELETING`` env no one uses too. ``if_unused`` asks for the
old refusal; ``force`` removes it at once whoever holds it, and the audit
record names the leases and pids it overrode.

Envs leave the root only through here and :mod:`.cleanup`; both remove an env
by renaming it into the trash under its lock (``Services.discard``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Sequence

import attrs

from uv_envs._errors import EnvironmentBusy, EnvironmentInUse, EnvironmentUnreadable
from uv_envs._events import domain as events
from uv_envs._models import DeleteStatus, Environment, EnvKey, EnvStatus
from uv_envs._procs.scan import process_alive
from uv_envs._reports import DeleteResult, LiveProcess

from .access import EnvAccess
from .operation import audited
from .services import Services

logger = logging.getLogger("uv_envs")

#: Seconds between the reaper's looks at the holders it knows (a pid check each, no scan).
REAP_PAUSE = 0.2
#: Seconds between full rescans of a withdrawn env's users, whatever the known pids do.
RESCAN_EVERY = 5.0


def _refusal(key: EnvKey, leases: Sequence[int], processes: Sequence[LiveProcess]) -> Exception:
    if leases:
        return EnvironmentInUse(
            f"environment {key} is leased by {len(leases)} running process(es); "
            "delete it with force, or wait for the leases to end",
            fields=("force",),
        )
    named = "; ".join(f"pid {p.pid}: {p.description}" for p in processes)
    return EnvironmentInUse(
        f"environment {key} is in use by {len(processes)} running process(es) "
        f"({named}); delete it with force, or once they have exited",
        pids=[p.pid for p in processes],
        fields=("force",),
    )


@attrs.define
class Deleter:
    """Deletes envs on request, and finishes the deletes deferred while envs were in use."""

    services: Services
    access: EnvAccess
    reaper: Reaper = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.reaper = Reaper(self)

    def delete(
        self, key: EnvKey, timeout: float | None, *, force: bool, if_unused: bool = False
    ) -> DeleteResult:
        services = self.services
        with self.access.locked(key, timeout=timeout):
            try:
                environment = services.metadata.load(key)
            except EnvironmentUnreadable:
                environment = None  # quarantined: deleting it is the way out
            if environment is None and not services.layout.env_dir(key).exists():
                return DeleteResult(key=key, status=DeleteStatus.NOT_FOUND)
            leases = services.leases.live(key)
            processes = services.liveness.snapshot().env(key)
            held = bool(leases or processes)
            if held and not force:
                if if_unused or environment is None:  # no record to mark: refused as before
                    raise _refusal(key, leases, processes)
                result = self._withdraw(environment, leases, processes)
            else:
                details = {
                    "forced": held,
                    "overrode_leases": len(leases),
                    "overrode_pids": [p.pid for p in processes],
                }
                with audited(services, key, "delete", details):
                    services.discard(key)
                result = DeleteResult(key=key, status=DeleteStatus.DELETED)
        if result.status is DeleteStatus.DEFERRED:
            self.reaper.watch(key, result.held_by)
        else:
            services.emit(events.EnvironmentDeleted(key))
        return result

    def _withdraw(
        self, environment: Environment, leases: Sequence[int], processes: Sequence[LiveProcess]
    ) -> DeleteResult:
        """Mark the env ``DELETING`` on disk: no hand-out serves it from now on."""
        key, pids = environment.key, tuple(p.pid for p in processes)
        note = _note(pids, len(leases))
        details = {"deferred": True, "held_by_pids": list(pids), "held_by_leases": len(leases)}
        with audited(self.services, key, "delete", details):
            marked = attrs.evolve(
                environment, status=EnvStatus.DELETING, error=note, updated_at=time.time()
            )
            self.services.metadata.save(marked)
            marker = self.services.layout.pending_delete(key)
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(attrs.asdict(key)))
        logger.info("delete of %s deferred: %s", key, note)
        return DeleteResult(key, DeleteStatus.DEFERRED, held_by=pids, leases=len(leases))

    def finish(self, key: EnvKey) -> tuple[int, ...] | None:
        """Remove the withdrawn env if nothing holds it any more.

        Returns the pids still holding it, ``()`` for leases only, ``None`` when
        there is nothing left to wait for (removed, gone, or made again since).
        """
        services = self.services
        try:
            with self.access.locked(key, timeout=0.0):
                try:
                    environment = services.metadata.load(key)
                except EnvironmentUnreadable:
                    environment = None  # quarantined meanwhile: a delete of its own removes it
                if environment is None or environment.status is not EnvStatus.DELETING:
                    services.layout.pending_delete(key).unlink(missing_ok=True)
                    return None
                leases = services.leases.live(key)
                processes = services.liveness.snapshot().env(key)
                if leases or processes:
                    return tuple(p.pid for p in processes)
                details = {
                    "deferred": True,
                    "completed": True,
                    "withdrawn_at": environment.updated_at,
                }
                with audited(services, key, "delete", details):
                    services.discard(key)
                services.layout.pending_delete(key).unlink(missing_ok=True)
        except EnvironmentBusy:
            return ()  # an operation holds its lock: look again soon
        services.emit(events.EnvironmentDeleted(key, details={"deferred": True}))
        logger.info("deferred delete of %s finished: its last user exited", key)
        return None

    def pending(self) -> list[EnvKey]:
        """Keys whose delete waits for their users (recorded on disk)."""
        keys = []
        with contextlib.suppress(FileNotFoundError):
            for marker in self.services.layout.pending_delete(_ANY).parent.iterdir():
                with contextlib.suppress(OSError, ValueError, TypeError):
                    keys.append(EnvKey(**json.loads(marker.read_text())))
        return keys


_ANY = EnvKey("any", "any")


def _note(pids: Sequence[int], leases: int) -> str:
    holders = [f"pid {pid}" for pid in pids] + ([f"{leases} lease(s)"] if leases else [])
    return "being deleted; removed once these exit: " + ", ".join(holders)


@attrs.define
class Reaper:
    """A background thread that finishes deferred deletes once their holders exit.

    It checks the known pids every :data:`REAP_PAUSE` seconds (cheap), rescans
    when they are gone or every :data:`RESCAN_EVERY` seconds, and ends once
    nothing is pending; a delete deferred later starts it again.
    """

    deleter: Deleter
    _waiting: dict[EnvKey, tuple[int, ...]] = attrs.field(factory=dict)
    _guard: threading.Lock = attrs.field(factory=threading.Lock)
    _stop: threading.Event = attrs.field(factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, key: EnvKey, pids: tuple[int, ...]) -> None:
        """Finish ``key``'s delete once ``pids`` (and any later holder) have exited."""
        with self._guard:
            self._waiting[key] = pids
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="uv-envs-reaper", daemon=True)
            self._thread.start()

    def resume(self) -> None:
        """Watch every delete recorded as pending on disk (a manager opened on the root)."""
        for key in self.deleter.pending():
            self.watch(key, ())

    def stop(self) -> None:
        """Stop the thread; what is pending stays on disk for the next manager."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _run(self) -> None:
        rescanned = 0.0
        while not self._stop.wait(REAP_PAUSE):
            now = time.monotonic()
            rescan = now - rescanned >= RESCAN_EVERY
            rescanned = now if rescan else rescanned
            with self._guard:
                waiting = dict(self._waiting)
            for key, pids in waiting.items():
                if not rescan and (
                    any(process_alive(pid) for pid in pids)
                    or self.deleter.services.leases.live(key)
                ):
                    continue
                try:
                    holders = self.deleter.finish(key)
                except Exception:
                    logger.exception("could not finish the deferred delete of %s", key)
                    holders = pids
                with self._guard:
                    if holders is None:
                        self._waiting.pop(key, None)
                    else:
                        self._waiting[key] = holders
            with self._guard:
                if not self._waiting:
                    self._thread = None
                    return
