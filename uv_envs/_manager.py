"""``EnvManager``: the public facade over the core's services.

Each method only delegates. The services are wired in :mod:`._bootstrap`; what
each method guarantees is in docs/api.md, the rules every operation follows in
docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import warnings
from collections.abc import Iterable
from typing import Any, Literal, overload

from uv_envs._audit.log import AuditLog, AuditQuery
from uv_envs._bytecode.compiler import BytecodeCompiler
from uv_envs._core.repair import RepairReport
from uv_envs._core.replication import Replication
from uv_envs._core.requests import Asked
from uv_envs._events import domain as events
from uv_envs._events.stream import EventStream
from uv_envs._events.tallies import ManagerStats
from uv_envs._events.tracking import operation_scope
from uv_envs._procs.scan import ProcessScanner
from uv_envs._uv import runner as _runner
from uv_envs._uv.executor import UvExecutor
from uv_envs._uv.python import Interpreter, InterpreterFinder

from ._bootstrap import Adapters, bootstrap
from ._models import Environment, EnvKey, EnvUsage
from ._reports import (
    CleanupReport,
    ClusterView,
    DeletedOperations,
    DeleteResult,
    Dependencies,
    Export,
    ExportFormat,
    OperationPage,
    OperationResult,
    Provisioned,
    StatusReport,
    VerifyReport,
)
from ._settings import Settings

#: The formats ``uv export`` writes: ``export`` answers them as text.
_LOCK_FORMATS = Literal[
    ExportFormat.REQUIREMENTS_TXT, ExportFormat.PYLOCK_TOML, ExportFormat.CYCLONEDX
]


class EnvManager:
    """Creates and maintains uv environments under one root (see docs/api.md).

    Args:
        settings: where and how; ``Settings.from_env()`` by default.
        executor: runs uv; a :class:`~uv_envs.SubprocessUvExecutor` by default.
        audit: the audit log; by default :func:`~uv_envs.open_audit_log`'s choice.
        publish: called with each :class:`~uv_envs.DomainEvent`.
        python_finder: resolves Python version requests.
        compiler: compiles shared venvs in the background (a background worker by default).
        processes: finds the processes that use the root's envs (cleanup and
            delete leave those alone); reads ``/proc`` by default.
        replication: where each change is also made (:func:`uv_envs.ray.ClusterEnvManager`).

    All methods are safe to call from several threads and processes at once.

    """

    #: The Ray cluster every env is installed on, if any (:func:`uv_envs.ray.ClusterEnvManager`).
    cluster: ClusterView | None = None

    def __init__(  # noqa: PLR0913 - public facade: one keyword per replaceable adapter
        self,
        settings: Settings | None = None,
        *,
        executor: UvExecutor | None = None,
        audit: AuditLog | None = None,
        publish: events.EventPublisher | None = None,
        python_finder: InterpreterFinder | None = None,
        compiler: BytecodeCompiler | None = None,
        processes: ProcessScanner | None = None,
        replication: Replication | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        given = Adapters(executor, audit, publish, python_finder, compiler, processes, replication)
        self._core = bootstrap(self.settings, given)

    def create(
        self,
        key: EnvKey,
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        python: str | None = None,
        refresh: bool = False,
    ) -> Environment:
        """Create the env of ``key``; the env itself if one with the same spec exists.

        Another spec raises :class:`~uv_envs.EnvironmentAlreadyExists`; a failed
        create is rolled back. ``refresh`` resolves again instead of reusing.
        """
        asked = Asked(packages, requirements_text, python, refresh=refresh)
        with self._core.replicas.change(key, asked):
            return self._core.provisioner.provide(key, asked, replace=False)

    def ensure(
        self,
        key: EnvKey,
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        python: str | None = None,
        refresh: bool = False,
    ) -> Environment:
        """Make the env of ``key`` match the spec; safe to retry.

        Another spec moves the env to a new generation; if that fails, the old one stays.
        """
        asked = Asked(packages, requirements_text, python, refresh=refresh)
        with self._core.replicas.change(key, asked):
            return self._core.provisioner.provide(key, asked, replace=True)

    def provision(
        self,
        key: EnvKey,
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        python: str | None = None,
        refresh: bool = False,
        replace: bool = False,
    ) -> Provisioned:
        """:meth:`create` (or with ``replace``, :meth:`ensure`), saying what it did.

        The env, its :class:`~uv_envs.ProvisionOutcome` and its ``pyproject.toml``,
        all under one lock, so no concurrent delete can split them.
        """
        asked = Asked(packages, requirements_text, python, refresh=refresh)
        with self._core.replicas.change(key, asked):
            return self._core.provisioner.provision(key, asked, replace=replace)

    @staticmethod
    def cancellable(cancel: threading.Event) -> contextlib.AbstractContextManager[None]:
        """Operations in this block stop, roll back and raise ``OperationCancelled`` once set."""
        return _runner.cancellable(cancel)

    @staticmethod
    def following(operation_id: str) -> contextlib.AbstractContextManager[str]:
        """Stream events of operations in this block carry ``operation_id`` (see :attr:`events`)."""
        return operation_scope(operation_id)

    @property
    def events(self) -> EventStream:
        """The numbered domain events and uv progress of this manager, for live subscribers."""
        return self._core.stream

    def status(self, key: EnvKey) -> StatusReport:
        """The env's status and which of its files exist. Never raises for a missing env."""
        return self._core.reads.status(key)

    def get(self, key: EnvKey) -> Environment:
        """The env of ``key``; raises :class:`~uv_envs.EnvironmentNotFound` if there is none."""
        return self._core.reads.get(key)

    def runtime_env(self, key: EnvKey) -> dict[str, Any]:
        """What a runner needs to use the env; counts as a use for idle cleanup."""
        return self._core.reads.runtime_env(key)

    def usage(self, key: EnvKey) -> EnvUsage:
        """Bytes on disk, last use and live leases of the env, as cleanup sees them."""
        return self._core.reads.usage(key)

    def list_environments(
        self, workflow_id: str | None = None, node_id: str | None = None
    ) -> list[Environment]:
        """Every env (FAILED and UNREADABLE ones too), optionally of a workflow and node."""
        return self._core.reads.list_environments(workflow_id, node_id)

    def dependencies(self, key: EnvKey) -> Dependencies:
        """Declared dependencies and locked versions of the current generation."""
        return self._core.reads.dependencies(key)

    @overload
    def export(self, key: EnvKey, fmt: Literal[ExportFormat.PROJECT] = ...) -> Export: ...
    @overload
    def export(self, key: EnvKey, fmt: _LOCK_FORMATS) -> str: ...
    @overload
    def export(self, key: EnvKey, fmt: str) -> Export | str: ...
    def export(self, key: EnvKey, fmt: str = ExportFormat.PROJECT) -> Export | str:
        """The current generation's project files, or its lock as ``uv export`` prints it.

        ``fmt`` is an :class:`~uv_envs.ExportFormat` or its value.
        """
        return self._core.reads.export(key, fmt)

    def export_as(self, key: EnvKey, fmt: str) -> str:
        """Deprecated: use ``export(key, fmt)``."""
        message = "EnvManager.export_as is deprecated; use export(key, fmt)"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return self._core.reads.export_text(key, fmt)

    def pythons(self) -> list[Interpreter]:
        """The interpreters envs can be built with, in preference order."""
        return self._core.services.python_finder.installed()

    def add(
        self,
        key: EnvKey,
        packages: Iterable[str] = (),
        *,
        requirements_text: str | bytes | None = None,
    ) -> OperationResult:
        """Add dependencies (``uv add``) in a new generation, then switch to it."""
        with self._core.replicas.change(key):
            return self._core.changes.add(key, packages, requirements_text)

    def update(self, key: EnvKey, packages: Iterable[str] = ()) -> OperationResult:
        """Upgrade the locked versions of ``packages``, or of everything when none are given."""
        with self._core.replicas.change(key):
            return self._core.changes.update(key, packages)

    def remove(self, key: EnvKey, packages: Iterable[str]) -> OperationResult:
        """Remove declared dependencies (``uv remove``) in a new generation."""
        with self._core.replicas.change(key):
            return self._core.changes.remove(key, packages)

    def sync(self, key: EnvKey) -> OperationResult:
        """Rebuild the venv exactly from the env's uv.lock, as a new generation; repairs it."""
        with self._core.replicas.change(key):
            return self._core.changes.sync(key)

    def adopt(self, key: EnvKey, *, pyproject_toml: str, uv_lock: str) -> OperationResult:
        """Move an existing env to exactly this project (e.g. another root's :meth:`export`)."""
        with self._core.replicas.change(key):
            return self._core.changes.adopt(key, pyproject_toml, uv_lock)

    def lock_only(
        self,
        workflow_id: str,
        *,
        packages: Iterable[str] = (),
        python: str | None = None,
        build: bool = False,
    ) -> Export:
        """Resolve a spec as a create would, keyed ``(workflow_id, <spec hash>[:40])``.

        Its ``pyproject.toml`` and ``uv.lock``, for a caller that installs them
        elsewhere (:meth:`install_exact`); no venv unless ``build``.
        """
        asked = Asked(packages, None, python)
        return self._core.provisioner.lock_only(workflow_id, asked, build=build)

    def install_exact(self, key: EnvKey, *, pyproject_toml: str, uv_lock: str) -> Provisioned:
        """Make ``key`` hold exactly this project: ``REUSED``, ``CREATED`` or ``REBUILT``."""
        return self._core.exact.install(key, pyproject_toml, uv_lock)

    def delete(
        self,
        key: EnvKey,
        *,
        force: bool = False,
        timeout: float | None = None,
        if_unused: bool = False,
    ) -> DeleteResult:
        """Remove the env (``NOT_FOUND`` if none); in use: ``DEFERRED`` (see docs/api.md)."""
        here = functools.partial(self._core.deleter.delete, key, timeout, force=force)
        return self._core.replicas.delete(key, lambda: here(if_unused=if_unused))

    def delete_within(self, key: EnvKey, timeout: float, *, force: bool = False) -> DeleteResult:
        """Deprecated: use ``delete(key, timeout=...)``."""
        message = "EnvManager.delete_within is deprecated; use delete(key, timeout=...)"
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return self.delete(key, force=force, timeout=timeout)

    def cleanup(
        self,
        idle_seconds: float | None = None,
        *,
        max_bytes: int | None = None,
        min_idle_seconds: float = 0.0,
        dry_run: bool = False,
    ) -> CleanupReport:
        """Delete idle envs, then least recently used ones while over ``max_bytes``.

        Busy, leased and recently used envs stay; ``dry_run``: report, delete nothing.
        """
        collector = self._core.collector
        report = collector.cleanup(idle_seconds, max_bytes, min_idle_seconds, dry_run=dry_run)
        self._core.replicas.cleaned(report)
        return report

    def lease(self, key: EnvKey) -> contextlib.AbstractContextManager[Environment]:
        """Hold the env in use for a run: a delete waits for it to end, cleanup skips it.

        The generation it yields is kept until the block or the process ends.
        """
        return self._core.access.leased(key)

    def verify(self, key: EnvKey) -> VerifyReport:
        """Check the venv against its lock, file by file; mark it ``DAMAGED`` if it fails."""
        return self._core.verifier.verify(key)

    def verify_all(self) -> RepairReport:
        """Check every env on the root, each shared venv once; mark what is damaged."""
        return self._core.repairs.verify_all()

    def repair(self, key: EnvKey | None = None) -> RepairReport:
        """Check one env, or the whole root, and rebuild what is damaged."""
        return self._core.repairs.repair(key)

    def operations(  # noqa: PLR0913 - public facade: the filters EnvManager.operations has always taken
        self,
        workflow_id: str | None = None,
        node_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
        *,
        host: str | None = None,
        root: str | None = None,
    ) -> OperationPage:
        """The audit trail, newest first, filtered (by ``host`` and ``root`` too) and paged."""
        query = AuditQuery(
            workflow_id=workflow_id,
            node_id=node_id,
            status=status,
            host=host,
            root=root,
            limit=limit,
            offset=offset,
        )
        return self._core.services.audit.query(query)

    def delete_operations(self, workflow_id: str, node_id: str | None = None) -> DeletedOperations:
        """Remove the audit records of a workflow, or of one node of it."""
        EnvKey(workflow_id, node_id or "x")  # validates both ids
        return self._core.services.audit.delete(workflow_id, node_id or None)

    def stats(self) -> ManagerStats:
        """Operations and uv runs counted since this manager started; the store's size."""
        return self._core.stats()

    def recover(self) -> list[EnvKey]:
        """Repair what crashed processes left behind; return the keys that needed it."""
        return self._core.recovery.recover_root()

    def close(self) -> None:
        """Stop the replication and the background reaper; release the audit log's connections."""
        self._core.close()
