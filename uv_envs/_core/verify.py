"""Checking envs' venvs and recording the damage found: ``verify``, and the steps repair shares.

Verify, repair (``verify_all``, ``repair``) and sync's check of a shared venv
all go one way through :class:`Verifier`: :meth:`Verifier.inspect` checks a
generation's venv against its lock (:func:`uv_envs._store.damage.check_generation`),
drops the damaged packages from uv's cache and marks a damaged store entry
(:func:`uv_envs._store.damage.mark_damaged`); :meth:`Verifier.record_damaged`
persists DAMAGED on an env whose lock the caller holds.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path

import attrs

from uv_envs._errors import EnvironmentUnreadable
from uv_envs._models import EnvKey, EnvStatus
from uv_envs._reports import VerifyReport
from uv_envs._store.damage import VenvCheck, check_generation, mark_damaged
from uv_envs._store.manifest import manifest_path, write_manifest
from uv_envs._store.venvs import linked_entry
from uv_envs._uv.commands import cache_clean_command

from . import quarantine
from .access import USABLE, EnvAccess, Locked
from .operation import audited
from .services import Services


@attrs.frozen
class Verifier:
    """Checks envs' venvs and records what it found."""

    services: Services
    access: EnvAccess

    def verify(self, key: EnvKey) -> VerifyReport:
        """Check one env's venv under its lock; DAMAGED if anything is wrong, READY again if not."""
        services = self.services
        with self.access.locked(key) as token:
            try:
                environment = self.access.require(token)
            except EnvironmentUnreadable as exc:
                return quarantine.verify_report(quarantine.record_of(exc, services.layout, key))
            with audited(services, key, "verify") as operation:
                found = self.inspect(services.dirs.current_dir(environment))
                problems = found.problems + digest_problems(environment.digest, found.digest)
                if problems:
                    self.record_damaged(token, problems)
                elif environment.status is EnvStatus.DAMAGED or not environment.digest:
                    # A record from before digests gets the one its healthy files give.
                    services.metadata.save(
                        attrs.evolve(
                            environment, status=EnvStatus.READY, error=None, digest=found.digest
                        )
                        if environment.status is EnvStatus.DAMAGED
                        else attrs.evolve(environment, digest=found.digest)
                    )
                operation.note(
                    problems=list(problems),
                    checked_files=found.checked_files,
                    digest=found.digest,
                    recorded_digest=environment.digest,
                )
        return VerifyReport(
            key=key, problems=problems, checked_files=found.checked_files, digest=found.digest
        )

    def inspect(self, gen_dir: Path) -> VenvCheck:
        """Check a generation's venv; forget its damaged packages; mark its damaged store entry.

        Also renews the venv's manifest (:mod:`uv_envs._store.manifest`) when it is
        sound and removes it when it is not.
        """
        found = check_generation(gen_dir)
        # The cheap check's record follows the full one: sound, it is measured again (a
        # file touched but intact passes cheaply from now on); damaged, it goes, so every
        # later hand-out hashes the copy until it is repaired.
        with contextlib.suppress(OSError):
            if found.problems:
                manifest_path(gen_dir / ".venv").unlink(missing_ok=True)
            else:
                write_manifest(gen_dir / ".venv")
        if found.damaged_packages:
            self._forget_cached(found.damaged_packages)
        entry = linked_entry(self.services.layout.store_dir, gen_dir)
        if found.problems and entry is not None:
            with contextlib.suppress(OSError):
                mark_damaged(entry)
        return found

    def record_damaged(self, token: Locked, problems: tuple[str, ...]) -> None:
        """Persist DAMAGED, with the first problems, on the env whose lock ``token`` proves."""
        metadata = self.services.metadata
        environment = metadata.load(token.key)
        if environment is not None and environment.status in USABLE:
            error = "; ".join(problems[:5])
            metadata.save(attrs.evolve(environment, status=EnvStatus.DAMAGED, error=error))

    def _forget_cached(self, names: Iterable[str]) -> None:
        # Installed files are hard links into uv's cache: drop the damaged packages
        # from it, so no later install links the same bytes.
        self.services.uv.run(cache_clean_command(self.services.uv_options, names), "uv cache clean")


def digest_problems(recorded: str, found: str) -> tuple[str, ...]:
    """The problem to report when the files on disk give another digest than the recorded one."""
    if not recorded or not found or recorded == found:
        return ()
    return (f"the installed files' digest {found} differs from the recorded {recorded}",)
