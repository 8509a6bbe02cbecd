"""Delete: one env leaves the root on request, unless a live lease holds it or a process uses it.

Processes are found by one ``/proc`` scan under the env's lock (see
:mod:`uv_envs._procs.liveness`); ``force`` overrides both, and the audit
record names the leases and pids it overrode.

Envs leave the root only through here and :mod:`.cleanup`; both remove an env
by renaming it into the trash under its lock (``Services.discard``).
"""

from __future__ import annotations

import attrs

from uv_envs._errors import EnvironmentInUse, EnvironmentUnreadable
from uv_envs._events import domain as events
from uv_envs._models import DeleteStatus, EnvKey
from uv_envs._reports import DeleteResult

from .access import EnvAccess
from .operation import audited
from .services import Services


@attrs.frozen
class Deleter:
    """Deletes one env on request; ``force`` overrides live leases and processes using it."""

    services: Services
    access: EnvAccess

    def delete(self, key: EnvKey, *, force: bool, timeout: float | None) -> DeleteResult:
        services = self.services
        with self.access.locked(key, timeout=timeout):
            try:
                environment = services.metadata.load(key)
            except EnvironmentUnreadable:
                environment = None  # quarantined: deleting it is the way out
            if environment is None and not services.layout.env_dir(key).exists():
                return DeleteResult(key=key, status=DeleteStatus.NOT_FOUND)
            leases = services.leases.live(key)
            if leases and not force:
                raise EnvironmentInUse(
                    f"environment {key} is leased by {len(leases)} running process(es); "
                    "delete it with force, or wait for the leases to end",
                    fields=("force",),
                )
            processes = services.liveness.snapshot().env(key)
            if processes and not force:
                named = "; ".join(f"pid {p.pid}: {p.description}" for p in processes)
                raise EnvironmentInUse(
                    f"environment {key} is in use by {len(processes)} running process(es) "
                    f"({named}); delete it with force, or once they have exited",
                    pids=[p.pid for p in processes],
                    fields=("force",),
                )
            details = {
                "forced": bool(leases or processes),
                "overrode_leases": len(leases),
                "overrode_pids": [p.pid for p in processes],
            }
            with audited(services, key, "delete", details):
                services.discard(key)
        services.emit(events.EnvironmentDeleted(key))
        return DeleteResult(key=key, status=DeleteStatus.DELETED)
