"""The collaborators every service of the core shares, wired once by :mod:`._bootstrap`."""

from __future__ import annotations

import attrs

from . import _events as events
from ._audit import AuditLog
from ._bytecode import BytecodePolicy
from ._envdirs import EnvDirs
from ._layout import Layout
from ._leases import Leases
from ._metadata import JsonMetadataRepository
from ._models import EnvKey
from ._python import InterpreterFinder
from ._raylink import RayLinker
from ._resolutions import StoredResolutions
from ._runner import UvRunner
from ._settings import Settings
from ._store import LockStore, VenvStore
from ._uv import UvOptions


@attrs.frozen
class Services:
    """Settings, paths and adapters of one root."""

    settings: Settings
    layout: Layout
    uv: UvRunner
    uv_options: UvOptions
    metadata: JsonMetadataRepository
    audit: AuditLog
    publish: events.EventPublisher | None
    python_finder: InterpreterFinder
    lock_store: LockStore
    venv_store: VenvStore
    dirs: EnvDirs
    leases: Leases
    resolutions: StoredResolutions
    bytecode: BytecodePolicy
    ray_link: RayLinker

    def emit(self, event: events.DomainEvent) -> None:
        """Publish a domain event; a publisher that raises is logged and ignored."""
        events.safe_publish(self.publish, event)

    def discard(self, key: EnvKey) -> None:
        """Forget an env: its record, then its directory; the caller holds the env lock."""
        self.metadata.discard(key)
        self.dirs.remove(key)
