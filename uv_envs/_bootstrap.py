"""The one place where the real adapters are wired, with the overrides tests and callers give.

``EnvManager`` calls :func:`bootstrap`; the CLI, the servers and the providers
all build an ``EnvManager``, so they are wired here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from uv_envs._audit.counted import CountedAuditLog
from uv_envs._audit.log import AuditLog
from uv_envs._audit.open import open_audit_log
from uv_envs._bytecode.compiler import BackgroundCompiler, BytecodeCompiler, BytecodePolicy
from uv_envs._bytecode.early import WORKER
from uv_envs._core.access import EnvAccess
from uv_envs._core.cleanup import Collector
from uv_envs._core.delete import Deleter
from uv_envs._core.dependencies import DependencyChanges
from uv_envs._core.exact import ExactInstaller
from uv_envs._core.generations import GenerationSwitch
from uv_envs._core.handout import HandOutCheck
from uv_envs._core.install import Installer
from uv_envs._core.provision import Provisioner
from uv_envs._core.reads import Reads
from uv_envs._core.recovery import EnvRecovery, RootRecovery
from uv_envs._core.repair import Repairs
from uv_envs._core.replication import Replicated, Replication
from uv_envs._core.services import Services
from uv_envs._core.verify import Verifier
from uv_envs._errors import StorageError
from uv_envs._events import domain as events
from uv_envs._events.stream import EventStream
from uv_envs._events.tallies import ManagerStats, Tally
from uv_envs._procs.liveness import Liveness
from uv_envs._procs.scan import ProcessScanner, ProcScanner
from uv_envs._store.envdirs import EnvDirs
from uv_envs._store.layout import Layout
from uv_envs._store.leases import Leases
from uv_envs._store.metadata import JsonMetadataRepository
from uv_envs._store.provenance import ResolutionRecords
from uv_envs._store.resolutions import ResolutionStore, StoredResolutions
from uv_envs._store.venvs import VenvStore
from uv_envs._uv.commands import UvOptions
from uv_envs._uv.counted import CountedExecutor
from uv_envs._uv.executor import SubprocessUvExecutor, UvExecutor, find_uv_binary
from uv_envs._uv.python import InterpreterFinder, PythonFinder
from uv_envs._uv.raylink import RayLinker
from uv_envs._uv.runner import UvRunner

from ._settings import Settings

if TYPE_CHECKING:
    from pathlib import Path


@attrs.frozen
class Core:
    """The services of one root, ready to be called by the facade."""

    services: Services
    access: EnvAccess
    provisioner: Provisioner
    changes: DependencyChanges
    exact: ExactInstaller
    reads: Reads
    collector: Collector
    deleter: Deleter
    verifier: Verifier
    recovery: RootRecovery
    repairs: Repairs
    replicas: Replicated
    stream: EventStream
    #: The operations and the uv runs counted since the manager started.
    operations: Tally
    uv_runs: Tally

    def stats(self) -> ManagerStats:
        """The tallies, and the shared store's size as recorded (no tree walk)."""
        entries, size = self.services.venv_store.recorded_totals()
        return ManagerStats(
            operations=self.operations.snapshot(),
            operations_running=self.operations.running,
            uv_runs=self.uv_runs.snapshot(),
            store_entries=entries,
            store_bytes=size,
        )

    def close(self) -> None:
        """Stop the replication and the reaper (pending deletes stay on disk); close the audit."""
        self.replicas.close()
        self.deleter.reaper.stop()
        self.services.audit.close()


@attrs.frozen
class Adapters:
    """The adapters a caller or a test gives instead of the real ones (``None``: the real one)."""

    executor: UvExecutor | None = None
    audit: AuditLog | None = None
    publish: events.EventPublisher | None = None
    python_finder: InterpreterFinder | None = None
    compiler: BytecodeCompiler | None = None
    processes: ProcessScanner | None = None
    #: Where each change is also made (a Ray cluster's nodes); None: nowhere.
    replication: Replication | None = None


def _check_root(root: Path) -> None:
    """Refuse a root that is, or lies under, a file: each part would fail in its own words."""
    existing = next((p for p in (root, *root.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        where = "it is" if existing == root else f"{existing} is"
        raise StorageError(
            f"cannot keep environments in {root}: {where} not a directory; "
            "set root (UV_ENVS_ROOT) to a directory",
            fields=("root",),
        )


def bootstrap(settings: Settings, given: Adapters) -> Core:
    """Wire the core of ``settings.root``; each adapter not ``given`` is the real one."""
    executor, audit, python_finder = given.executor, given.audit, given.python_finder
    compiler, processes = given.compiler, given.processes
    _check_root(settings.root)
    layout = Layout(settings.root)
    # Every uv run and every audited operation is counted once, here where both are wired.
    uv_runs, operations = Tally(), Tally()
    executor = CountedExecutor(
        executor or SubprocessUvExecutor(find_uv_binary(settings.uv_binary)), uv_runs
    )
    uv_options = UvOptions(
        cache_dir=settings.effective_cache_dir,
        index=settings.index,
        python_downloads=settings.python_downloads,
        compile_bytecode=settings.compile_bytecode,
        timeout=settings.uv_timeout,
    )
    venv_store = VenvStore(layout, settings.lock_timeout)
    resolution_store = ResolutionStore(layout, settings.lock_max_age)
    compiler = compiler if compiler is not None else BackgroundCompiler()
    stream = EventStream()
    services = Services(
        settings=settings,
        layout=layout,
        uv=UvRunner(executor, progress=stream.progress),
        uv_options=uv_options,
        metadata=JsonMetadataRepository(layout),
        audit=CountedAuditLog(
            audit if audit is not None else open_audit_log(settings, layout), operations
        ),
        publish=given.publish,
        python_finder=python_finder
        or PythonFinder(executor, uv_options, settings.python_search_paths),
        resolution_store=resolution_store,
        venv_store=venv_store,
        dirs=EnvDirs(layout, venv_store),
        leases=Leases(layout),
        liveness=Liveness(layout, processes or ProcScanner(ignore=frozenset({str(WORKER)}))),
        resolutions=StoredResolutions(
            resolution_store, ResolutionRecords(layout), settings.index, executor
        ),
        bytecode=BytecodePolicy(
            compiler,
            background=settings.background_bytecode,
            install_time=settings.compile_bytecode,
            layout=layout,
            slots=settings.max_concurrent_installs,
        ),
        ray_link=RayLinker(settings.ray),
        stream=stream,
    )
    env_recovery = EnvRecovery(services)
    access = EnvAccess(services, env_recovery)
    installer = Installer(services)
    switch = GenerationSwitch(services, installer)
    verifier = Verifier(services, access)
    repairs = Repairs(services, access, switch, verifier)
    provisioner = Provisioner(services, access, installer, switch)
    changes = DependencyChanges(services, access, switch, shared_repairs=repairs)
    reads = Reads(services, access)
    deleter = Deleter(services, access)
    deleter.reaper.resume()  # deletes a manager before this one deferred (a restarted server)
    return Core(
        services=services,
        access=access,
        provisioner=provisioner,
        changes=changes,
        exact=ExactInstaller(
            services, access, provisioner, changes, HandOutCheck(services, verifier)
        ),
        reads=reads,
        collector=Collector(services, access),
        deleter=deleter,
        verifier=verifier,
        recovery=RootRecovery(services, access, env_recovery),
        repairs=repairs,
        replicas=Replicated(given.replication, reads, settings.default_python),
        stream=stream,
        operations=operations,
        uv_runs=uv_runs,
    )
