"""Reads: status, records, dependencies and exports. None of them waits for a lock.

Metadata is replaced atomically and ``current`` is resolved once per read, so
a read sees one whole generation. (The one exception, an abandoned create
rolled back on sight, is :meth:`EnvAccess.read`'s.) A read of a generation's
files that a concurrent change retired, or a delete removed, between finding
and reading them is done again on what is there now: it answers the new
generation, or EnvironmentNotFound, never a failure for a read that was fine.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from uv_envs._errors import (
    EnvironmentBusy,
    EnvironmentNotFound,
    EnvironmentUnreadable,
    InvalidRequirement,
    StorageError,
    UvError,
)
from uv_envs._locks import locks
from uv_envs._models import Environment, EnvKey, EnvStatus, EnvUsage
from uv_envs._reports import Dependencies, Export, ExportFormat, StatusReport
from uv_envs._store.damage import effective
from uv_envs._store.digest import installed_digest
from uv_envs._store.project import read_declared, read_locked
from uv_envs._store.venvs import tree_size
from uv_envs._uv.commands import export_command
from uv_envs._validation import validate_id

from . import quarantine
from .access import READY, USABLE, EnvAccess, require_status
from .services import Services

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

_T = TypeVar("_T")

#: Reads of one generation's files tried before a key that keeps changing is called busy.
READ_ATTEMPTS = 5


@attrs.frozen
class Reads:
    """The read side of one root."""

    services: Services
    access: EnvAccess

    def status(self, key: EnvKey) -> StatusReport:
        env_dir = self.services.layout.env_dir(key)
        try:
            environment = self._reported(self.access.read(key))
        except EnvironmentUnreadable as exc:
            return quarantine.status_report(
                self.services.layout, quarantine.record_of(exc, self.services.layout, key)
            )
        if environment is None:
            return StatusReport(key=key, status=EnvStatus.NOT_FOUND, env_path=env_dir)
        return StatusReport(
            key=key,
            status=environment.status,
            env_path=env_dir,
            has_pyproject=(env_dir / "pyproject.toml").is_file(),
            has_uv_lock=(env_dir / "uv.lock").is_file(),
            has_venv=(env_dir / ".venv" / "pyvenv.cfg").is_file(),
            environment=environment,
            error=None if environment.status is EnvStatus.READY else environment.error,
        )

    def get(self, key: EnvKey) -> Environment:
        environment = self._reported(self.access.read(key))
        if environment is None:
            raise EnvironmentNotFound(f"no environment {key}")
        return environment

    def runtime_env(self, key: EnvKey) -> dict[str, Any]:
        environment = require_status(self.get(key), READY)
        self.services.dirs.touch(environment)
        return environment.runtime_env()

    def usage(self, key: EnvKey) -> EnvUsage:
        """What the env costs; an UNREADABLE env reports its folder (no record to follow)."""
        services = self.services
        env_dir = services.layout.env_dir(key)
        try:
            environment: Environment | None = self.get(key)
        except EnvironmentUnreadable:
            environment = None
        venv_bytes, last_used = 0, 0.0
        if environment is not None:
            last_used = services.dirs.last_used(environment)
            try:
                target = environment.pinned_python_path.parent.parent.resolve(strict=True)
            except OSError:
                target = env_dir  # no venv to count
            if not target.is_relative_to(env_dir):
                venv_bytes = tree_size(target)  # a shared store entry
        else:
            with contextlib.suppress(OSError):
                last_used = services.layout.last_used_file(env_dir).stat().st_mtime
        return EnvUsage(
            key=key,
            own_bytes=tree_size(env_dir),
            venv_bytes=venv_bytes,
            last_used=last_used,
            leased_generations=tuple(sorted(services.leases.live(key))),
        )

    def list_environments(self, workflow_id: str | None, node_id: str | None) -> list[Environment]:
        if workflow_id is not None:
            validate_id(workflow_id, "workflow_id")
        if node_id is not None:
            validate_id(node_id, "node_id")
        services = self.services
        found: list[Environment] = []
        for key in services.metadata.keys(workflow_id, node_id):
            try:
                environment = self._reported(services.metadata.load(key))
            except EnvironmentUnreadable as exc:
                # Listed, never left out: quarantined, with the reason as its error.
                found.append(
                    quarantine.placeholder(
                        services.layout, quarantine.record_of(exc, services.layout, key)
                    )
                )
                continue
            except StorageError:
                continue
            if environment is None:
                continue
            if environment.status is EnvStatus.CREATING and locks.is_free(
                services.layout.lock_file(key)
            ):
                environment = attrs.evolve(
                    environment, status=EnvStatus.FAILED, error="creation was interrupted"
                )
            found.append(environment)
        return sorted(found, key=lambda e: e.key)

    def _reported(self, environment: Environment | None) -> Environment | None:
        """DAMAGED when the shared venv it links is (see ``_store.damage.effective``)."""
        return None if environment is None else effective(self.services.layout, environment)

    def dependencies(self, key: EnvKey) -> Dependencies:
        return self._read_current(
            key,
            lambda gen_dir: Dependencies(
                key=key, declared=read_declared(gen_dir), locked=read_locked(gen_dir)
            ),
        )

    def export(self, key: EnvKey, fmt: ExportFormat | str = ExportFormat.PROJECT) -> Export | str:
        """The project files as an :class:`Export`, or the lock as ``uv export`` prints it."""
        try:
            fmt = ExportFormat(fmt)
        except ValueError:
            known = ", ".join(repr(known.value) for known in ExportFormat)
            raise InvalidRequirement(f"unknown export format {fmt!r}; use one of {known}") from None
        if fmt is ExportFormat.PROJECT:
            return self.project(key)
        return self._read_current(key, lambda gen_dir: self._exported(gen_dir, fmt))

    def export_text(self, key: EnvKey, fmt: ExportFormat | str) -> str:
        """The lock as ``uv export`` prints it, never the project (``EnvManager.export_as``)."""
        exported = self.export(key, fmt)
        if isinstance(exported, Export):  # the one format export_as never took
            raise InvalidRequirement("export_as does not take 'project'; use export(key)")
        return exported

    def project(self, key: EnvKey) -> Export:
        """The current generation's ``pyproject.toml`` and ``uv.lock``."""
        return self._read_current(key, lambda gen_dir: self._project(key, gen_dir))

    @staticmethod
    def _project(key: EnvKey, gen_dir: Path) -> Export:
        pyproject_toml = (gen_dir / "pyproject.toml").read_text()
        return Export(
            key=key, pyproject_toml=pyproject_toml, uv_lock=(gen_dir / "uv.lock").read_text()
        )

    def _exported(self, gen_dir: Path, fmt: ExportFormat) -> str:
        invocation = export_command(gen_dir, self.services.uv_options, fmt)
        try:
            exported = self.services.uv.check(invocation, f"uv export --format {fmt}").stdout
        except UvError:
            if not (gen_dir / "uv.lock").is_file():
                raise FileNotFoundError(gen_dir / "uv.lock") from None  # moved meanwhile
            raise
        if fmt is ExportFormat.CYCLONEDX:
            try:
                return with_env_digest(exported, installed_digest(gen_dir / ".venv"))
            except (ValueError, AttributeError) as exc:
                msg = f"uv export --format cyclonedx1.5 printed no CycloneDX JSON object: {exc}"
                raise UvError(msg, command=invocation.args, stdout=exported[:2000]) from exc
        return exported

    def _read_current(self, key: EnvKey, read: Callable[[Path], _T]) -> _T:
        """``read`` of the current generation's folder, again if it went while being read."""
        for _ in range(READ_ATTEMPTS):
            environment = require_status(self.get(key), USABLE)
            gen_dir = self.services.dirs.current_dir(environment)
            try:
                return read(gen_dir)
            except FileNotFoundError as exc:
                now = self.get(key)  # EnvironmentNotFound when a delete took it
                if (now.created_at, now.generation) == (
                    environment.created_at,
                    environment.generation,
                ):
                    msg = f"environment {key}: {exc.filename} is missing from its generation"
                    raise StorageError(msg) from exc
                # A change or a delete and re-create moved it on: read what is there now.
        msg = f"environment {key} changed {READ_ATTEMPTS} times while being read; try again"
        raise EnvironmentBusy(msg)


#: The name of the SBOM property that carries the env digest.
SBOM_DIGEST_PROPERTY = "uv-envs:env-digest"


def with_env_digest(sbom: str, digest: str) -> str:
    """The CycloneDX JSON uv printed, with ``digest`` as a metadata property: it names the tree."""
    document = json.loads(sbom)
    metadata = document.setdefault("metadata", {})
    properties = metadata.setdefault("properties", [])
    properties.append({"name": SBOM_DIGEST_PROPERTY, "value": digest})
    return json.dumps(document, indent=2) + "\n"
