"""``EnvManager``: the public facade over the core's services.

Each method only delegates: the wiring is in :mod:`._bootstrap`, the rules in docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from uv_envs._audit.log import AuditLog, AuditQuery
from uv_envs._bytecode.compiler import BytecodeCompiler
from uv_envs._core.access import READY
from uv_envs._core.repair import RepairReport
from uv_envs._events import domain as events
from uv_envs._events.stream import EventStream
from uv_envs._events.tracking import operation_scope
from uv_envs._procs.scan import ProcessScanner
from uv_envs._uv import runner as _runner
from uv_envs._uv.commands import ExportFormat
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
    OperationPage,
    OperationResult,
    Provisioned,
    StatusReport,
    VerifyReport,
)
from ._settings import Settings


class EnvManager:
    """Creates and maintains uv environments under one root.

    Args:
        settings: where and how; ``Settings.from_env()`` by default.
        executor: runs uv; a :class:`~uv_envs.SubprocessUvExecutor` by default.
        audit: the audit log; by default :func:`~uv_envs.open_audit_log`'s choice.
        publish: called with each :class:`~uv_envs.DomainEvent`.
        python_finder: resolves Python version requests.
        compiler: compiles shared venvs in the background; a
            :class:`~uv_envs._bytecode.compiler.BackgroundCompiler` by default.
        processes: finds the processes that use the root's envs (cleanup and
            delete leave those alone); reads ``/proc`` by default.

    All methods are safe to call from several threads and processes at once.

    """

    #: The Ray cluster every env is installed on, if any (:class:`uv_envs.ray.ClusterEnvManager`).
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
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self._core = bootstrap(
            self.settings,
            Adapters(executor, audit, publish, python_finder, compiler, processes),
        )

    # Creating ------------------------------------------------------------------------

    def create(
        self,
        key: EnvKey,
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        python: str | None = None,
        refresh: bool = False,
    ) -> Environment:
        """Create the environment of ``key``.

        With the same spec as an existing env this returns that env; with
        another spec it raises :class:`~uv_envs.EnvironmentAlreadyExists`.
        A create that fails is rolled back completely. A spec resolved within
        ``Settings.lock_max_age`` reuses that resolution unless ``refresh``.
        """
        request = self._core.requests.of(packages, requirements_text, python, refresh=refresh)
        return self._core.provisioner.provide(key, request, replace=False)

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

        A READY env with the same spec is returned untouched. An env with
        another spec moves to a new generation built from the spec; if that
        fails, the old generation stays.
        """
        request = self._core.requests.of(packages, requirements_text, python, refresh=refresh)
        return self._core.provisioner.provide(key, request, replace=True)

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

        Answers the env, whether this call created it, reused it or rebuilt it
        (:class:`~uv_envs._models.ProvisionOutcome`), and its ``pyproject.toml``
        read under the same lock: what a server answers, from one call that no
        concurrent delete can split.
        """
        request = self._core.requests.of(packages, requirements_text, python, refresh=refresh)
        return self._core.provisioner.provision(key, request, replace=replace)

    @staticmethod
    def cancellable(cancel: threading.Event) -> contextlib.AbstractContextManager[None]:
        """Operations in this block stop and roll back once ``cancel`` is set.

        uv is stopped at once and the operation raises ``OperationCancelled``::

            with manager.cancellable(event):
                manager.ensure(key, packages=[...])
        """
        return _runner.cancellable(cancel)

    @staticmethod
    def following(operation_id: str) -> contextlib.AbstractContextManager[str]:
        """Stream events of operations in this block carry ``operation_id`` (see :attr:`events`)."""
        return operation_scope(operation_id)

    @property
    def events(self) -> EventStream:
        """The numbered domain events and uv progress of this manager, for live subscribers."""
        return self._core.stream

    # Reading -------------------------------------------------------------------------

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
        """Every env, optionally narrowed to a workflow and node, sorted by key.

        An env whose creator died is listed as FAILED until it is recovered;
        one whose record cannot be read as UNREADABLE, with the reason as its
        ``error``: never left out.
        """
        return self._core.reads.list_environments(workflow_id, node_id)

    def dependencies(self, key: EnvKey) -> Dependencies:
        """Declared dependencies and locked versions of the current generation."""
        return self._core.reads.dependencies(key)

    def export(self, key: EnvKey) -> Export:
        """pyproject.toml and uv.lock of the current generation, as text."""
        return self._core.reads.export(key)

    def export_as(self, key: EnvKey, fmt: ExportFormat) -> str:
        """The lock exported by ``uv export`` as ``requirements.txt`` or ``pylock.toml``."""
        return self._core.reads.export_as(key, fmt)

    def pythons(self) -> list[Interpreter]:
        """The interpreters envs can be built with, in preference order."""
        return self._core.services.python_finder.installed()

    # Changing dependencies -----------------------------------------------------------

    def add(
        self,
        key: EnvKey,
        packages: Iterable[str] = (),
        *,
        requirements_text: str | bytes | None = None,
    ) -> OperationResult:
        """Add dependencies (``uv add``) in a new generation, then switch to it."""
        return self._core.changes.add(key, packages, requirements_text)

    def update(self, key: EnvKey, packages: Iterable[str] = ()) -> OperationResult:
        """Upgrade locked versions: of ``packages``, or of everything when none are given.

        A bare name upgrades within the declared constraint (``uv lock
        --upgrade-package``); a requirement with a specifier also replaces the
        declared constraint (``uv add --upgrade-package``).
        """
        return self._core.changes.update(key, packages)

    def remove(self, key: EnvKey, packages: Iterable[str]) -> OperationResult:
        """Remove declared dependencies (``uv remove``) in a new generation."""
        return self._core.changes.remove(key, packages)

    def sync(self, key: EnvKey) -> OperationResult:
        """Rebuild the venv exactly from the env's uv.lock, as a new generation.

        The venv is built afresh, not linked from the store, so ``sync`` repairs
        a damaged env (uv then also bypasses its cache, which shares the bytes).
        When the env's shared venv was marked damaged (by ``verify``,
        ``verify_all`` or ``repair``), it is rebuilt once beside the damaged one
        instead, and every other env linking it is moved to the rebuilt one.
        """
        return self._core.changes.sync(key)

    def adopt(self, key: EnvKey, *, pyproject_toml: str, uv_lock: str) -> OperationResult:
        """Move an existing env to exactly this project (e.g. another root's :meth:`export`).

        The two files are written as given into a new generation and installed with
        ``uv sync --frozen``: nothing is resolved, the env holds exactly that lock.
        """
        return self._core.changes.adopt(key, pyproject_toml, uv_lock)

    def install_exact(self, key: EnvKey, *, pyproject_toml: str, uv_lock: str) -> Provisioned:
        """Make ``key`` hold exactly this project: ``REUSED``, ``CREATED`` or ``REBUILT``."""
        return self._core.exact.install(key, pyproject_toml, uv_lock)

    # Removing ------------------------------------------------------------------------

    def delete(
        self, key: EnvKey, *, force: bool = False, timeout: float | None = None
    ) -> DeleteResult:
        """Remove the env. A missing env is a success that says ``NOT_FOUND``.

        An env leased by a live process raises :class:`~uv_envs.EnvironmentInUse`
        unless ``force``. ``timeout``: seconds to wait for the env's lock
        (``Settings.lock_timeout`` by default).
        """
        return self._core.deleter.delete(key, force=force, timeout=timeout)

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
    ) -> CleanupReport:
        """Delete idle envs, then least recently used ones while over a disk budget.

        ``idle_seconds``: delete envs with no operation and no hand-out (``ensure``,
        ``create``, ``runtime_env``, ``lease``) for this long, and prune generations
        retired this long ago. ``max_bytes``: then, while envs and the store use more,
        delete the least recently used env. Busy and leased envs are skipped and
        reported; unlinked store entries and stored locks past their age are pruned.
        ``min_idle_seconds``: a floor for both passes: an env used more recently is
        never deleted, whatever the other two say (a smaller ``idle_seconds`` is
        raised to it, with a warning). The CLI and both servers pass
        :data:`DEFAULT_MIN_CLEANUP_IDLE_HOURS` unless told otherwise. A bool, NaN or
        negative limit raises :class:`InvalidInput` and deletes nothing.
        """
        return self._core.collector.cleanup(idle_seconds, max_bytes, min_idle_seconds)

    # Leases and verification ---------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, key: EnvKey) -> Iterator[Environment]:
        """Hold the env in use for the duration of a run (across processes).

        While the lease is held, ``delete`` refuses the env (unless forced),
        ``cleanup`` skips it, and the generation it yields is kept even after
        the env moves on: run the node with ``pinned_python_path``. The lease
        ends with the block, or with the holder's process.
        """
        core = self._core
        with contextlib.ExitStack() as stack:
            with core.access.locked(key) as token:
                environment = core.access.require(token, READY)
                stack.enter_context(core.services.leases.hold(key, environment.generation))
            core.services.dirs.touch(environment)
            yield environment

    def verify(self, key: EnvKey) -> VerifyReport:
        """Check that the venv matches its lock and its interpreter starts.

        Compares the installed distributions with ``uv.lock`` and every file
        with the hash in its ``RECORD``. A failed check marks the env
        ``DAMAGED`` (and its shared venv, so it is not linked again); ``sync``
        repairs it.
        """
        return self._core.verifier.verify(key)

    def verify_all(self) -> RepairReport:
        """Check every env on the root, each shared venv once; mark what is damaged.

        Repairs nothing (:meth:`repair` does). Envs whose record cannot be read
        are reported in ``unreadable``. For cron: ``uv-envs verify --all --json``.
        """
        return self._core.repairs.verify_all()

    def repair(self, key: EnvKey | None = None) -> RepairReport:
        """Check one env, or the whole root, and rebuild what is damaged.

        A damaged shared venv is rebuilt once, beside the damaged one (never
        edited: processes may still run from it), and every env whose current
        generation links it moves to a new generation linking the rebuilt
        one, envs other than ``key`` included. Envs whose record cannot be
        read are reported, never touched: delete them.
        """
        return self._core.repairs.repair(key)

    # Audit and recovery --------------------------------------------------------------

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
        """The audit trail, newest first, filtered and paged.

        ``host`` and ``root`` select the records of one host or root when
        several share an audit database (``Settings.audit_url``).
        """
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

    def recover(self) -> list[EnvKey]:
        """Repair what crashed processes left behind; return the keys that needed it.

        Rolls back dead creates, drops half-built generations, re-points links,
        removes temp files, half-built store venvs and the trash, and closes audit
        records of dead processes. Envs busy with a live operation are left alone.
        """
        return self._core.recovery.recover_root()

    def close(self) -> None:
        """Release what the manager holds open (the audit log's connections)."""
        self._core.services.audit.close()
