"""The repair service: ``verify_all`` and ``repair`` of one root, and sync's repair of co-users.

The checking and the choice of what to rebuild are :class:`._repair.Repairer`'s;
this module hands it the steps that need an env's lock and uv: persisting
DAMAGED, cleaning uv's cache, and moving an env to a new generation whose venv
links a healthy store entry (the switch builds the replacement beside the
damaged one, once, under the store lock).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import attrs

from uv_envs._errors import EnvironmentBusy, EnvironmentNotFound, EnvironmentUnreadable
from uv_envs._models import Environment, EnvKey, EnvStatus
from uv_envs._uv.commands import cache_clean_command

from .access import USABLE, EnvAccess
from .generations import GenerationPlan, GenerationSwitch
from .repair import Repairer, RepairReport
from .services import Services


@attrs.frozen
class Repairs:
    """Whole-root checks and repairs of one root."""

    services: Services
    access: EnvAccess
    switch: GenerationSwitch

    def verify_all(self) -> RepairReport:
        return self._repairer().check(sorted(self.services.metadata.keys()))

    def repair(self, key: EnvKey | None) -> RepairReport:
        if key is not None and self.services.metadata.read(key) is None:
            raise EnvironmentNotFound(f"no environment {key}")
        keys = [key] if key is not None else sorted(self.services.metadata.keys())
        return self._repairer().repair(keys)

    def check_entry_of(self, key: EnvKey) -> None:
        """Before ``key`` is synced: find damage in the shared venv it shares with others."""
        environment = self.services.metadata.read(key)
        if isinstance(environment, Environment):
            self._repairer().check_entry_of(environment)

    def repair_users_of(self, entry: Path, *, exclude: EnvKey) -> RepairReport:
        """After ``exclude`` left a damaged entry: move every other env off it too."""
        return self._repairer().repair_users_of(entry, exclude=exclude)

    def _repairer(self) -> Repairer:
        services = self.services
        return Repairer(
            services.layout,
            services.venv_store,
            read=services.metadata.read,
            mark=self._mark_damaged,
            rebuild=self._rebuild,
            clean_cache=self._clean_cache,
        )

    def _clean_cache(self, names: Iterable[str]) -> None:
        # Installed files are hard links into uv's cache: damaged ones are damaged there too.
        self.services.uv.run(cache_clean_command(self.services.uv_options, names), "uv cache clean")

    def _mark_damaged(self, key: EnvKey, problems: tuple[str, ...]) -> None:
        """Record DAMAGED on one env if its lock is free now (reads derive it meanwhile)."""
        busy = contextlib.suppress(EnvironmentBusy, EnvironmentUnreadable)
        with busy, self.access.locked(key, timeout=0):
            environment = self.services.metadata.load(key)
            if environment is not None and environment.status in USABLE:
                damaged = attrs.evolve(
                    environment, status=EnvStatus.DAMAGED, error="; ".join(problems[:5])
                )
                self.services.metadata.save(damaged)

    def _rebuild(self, key: EnvKey) -> None:
        """A new generation for one env, linked to a healthy (or freshly rebuilt) store venv."""
        with self.access.locked(key) as token:
            environment = self.access.require(token)
            plan = GenerationPlan("repair", spec=environment.spec, shared=True, refresh=True)
            self.switch.next(token, environment, plan, lambda _gen_dir, _operation: None)
