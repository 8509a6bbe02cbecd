"""The collaborators every service of the core shares, wired once by :mod:`._bootstrap`."""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from uv_envs._audit.log import AuditLog
from uv_envs._bytecode.compiler import BytecodePolicy
from uv_envs._events import domain as events
from uv_envs._events.records import Phase
from uv_envs._events.stream import EventStream
from uv_envs._models import EnvKey
from uv_envs._procs.liveness import Liveness
from uv_envs._settings import Settings
from uv_envs._store.envdirs import EnvDirs
from uv_envs._store.layout import Layout
from uv_envs._store.leases import Leases
from uv_envs._store.metadata import JsonMetadataRepository
from uv_envs._store.resolutions import ResolutionStore, StoredResolutions
from uv_envs._store.venvs import VenvStore
from uv_envs._uv.commands import UvOptions
from uv_envs._uv.python import InterpreterFinder
from uv_envs._uv.raylink import RayLinker
from uv_envs._uv.runner import UvRunner

_NO_DETAILS: Mapping[str, object] = {}


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
    resolution_store: ResolutionStore
    venv_store: VenvStore
    dirs: EnvDirs
    leases: Leases
    liveness: Liveness
    resolutions: StoredResolutions
    bytecode: BytecodePolicy
    ray_link: RayLinker
    stream: EventStream | None = None

    def emit(self, event: events.DomainEvent) -> None:
        """Publish a domain event; a publisher that raises is logged and ignored."""
        if self.stream is not None:
            events.safe_publish(self.stream.publish, event)
        events.safe_publish(self.publish, event)

    def progress(self, phase: Phase, **counts: int) -> None:
        """Tell the stream's subscribers what the operation in this thread does now."""
        if self.stream is None:
            return
        try:
            self.stream.progress(phase, counts, _NO_DETAILS)
        except Exception:  # noqa: BLE001 - progress never breaks the operation it reports
            events.log.exception("publishing progress failed; the operation is not affected")

    def discard(self, key: EnvKey) -> None:
        """Forget an env: its record, then its directory; the caller holds the env lock."""
        self.metadata.discard(key)
        self.dirs.remove(key)
