"""Verify: an env's venv against its lock; a damaged one is marked, and its store entry too."""

from __future__ import annotations

import contextlib

import attrs

from uv_envs._errors import EnvironmentUnreadable
from uv_envs._models import EnvKey, EnvStatus, VerifyReport
from uv_envs._root.damage import check_venv
from uv_envs._root.project import read_locked
from uv_envs._uv.commands import cache_clean_command

from . import quarantine
from .access import EnvAccess
from .operation import audited
from .services import Services


@attrs.frozen
class Verifier:
    """Checks envs and records what it found."""

    services: Services
    access: EnvAccess

    def verify(self, key: EnvKey) -> VerifyReport:
        services = self.services
        with self.access.locked(key) as token:
            try:
                environment = self.access.require(token)
            except EnvironmentUnreadable as exc:
                return quarantine.verify_report(quarantine.record_of(exc, services.layout, key))
            with audited(services, key, "verify") as operation:
                gen_dir = services.dirs.current_dir(environment)
                problems, checked, damaged_packages = check_venv(
                    gen_dir / ".venv", environment.pinned_python_path, read_locked(gen_dir)
                )
                if damaged_packages:
                    # Installed files are hard links into uv's cache: drop the damaged
                    # packages from it, so no later install links the same bytes.
                    services.uv.run(
                        cache_clean_command(services.uv_options, damaged_packages),
                        "uv cache clean",
                    )
                if problems:
                    damaged = attrs.evolve(
                        environment, status=EnvStatus.DAMAGED, error="; ".join(problems[:5])
                    )
                    services.metadata.save(damaged)
                    with contextlib.suppress(OSError):
                        services.venv_store.mark_damaged(gen_dir / ".venv")
                elif environment.status is EnvStatus.DAMAGED:
                    services.metadata.save(
                        attrs.evolve(environment, status=EnvStatus.READY, error=None)
                    )
                operation.note(problems=list(problems), checked_files=checked)
        return VerifyReport(key=key, problems=tuple(problems), checked_files=checked)
