"""The environment manager: every operation, atomic and crash-safe.

Rules every operation follows (docs/architecture.md has the long form):

* Input is validated completely before anything is written.
* Work on one env happens under that env's cross-process lock.
* A live generation is never edited. add, update, remove, sync and a respec
  build generation N+1 beside it; ``metadata.json`` naming N+1 is the commit
  point, then the ``current`` link is switched with one rename.
* Anything found half done under the lock was left by a dead process (the lock
  would not be free otherwise) and is rolled back (a create) or discarded (a
  pending generation) before the operation proceeds.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from . import _events as events
from . import _locking
from ._audit import FAILED, RUNNING, SUCCESS, AuditLog, SqliteAuditLog
from ._envdirs import EnvDirs
from ._errors import (
    EnvironmentAlreadyExists,
    EnvironmentInUse,
    EnvironmentNotFound,
    EnvironmentNotReady,
    InvalidInput,
    InvalidRequirement,
    OperationCancelled,
    StorageError,
    UvError,
)
from ._layout import Layout
from ._metadata import JsonMetadataRepository, MetadataRepository
from ._models import (
    CleanupReport,
    DeletedOperations,
    DeleteResult,
    Dependencies,
    Environment,
    EnvKey,
    EnvSpec,
    EnvStatus,
    Export,
    OperationPage,
    OperationResult,
    RetiredGeneration,
    StatusReport,
    VerifyReport,
)
from ._orphans import stop_processes_in
from ._project import read_declared, read_locked, render_pyproject, spec_hash
from ._python import Interpreter, InterpreterFinder, PythonFinder
from ._raylink import RayLinker
from ._settings import Settings
from ._store import LockStore, VenvStore, install_slot, tree_size, venv_id
from ._uv import (
    ExportFormat,
    SubprocessUvExecutor,
    UvExecutor,
    UvInvocation,
    UvOptions,
    UvResult,
    add_command,
    cache_clean_command,
    export_command,
    find_uv_binary,
    lock_command,
    raise_for_result,
    remove_command,
    sync_command,
)
from ._validation import (
    normalize_python_request,
    parse_requirement,
    parse_requirements,
    parse_requirements_text,
    validate_id,
)
from ._verify import check_venv

_PROJECT_FILES = ("pyproject.toml", "uv.lock")
# The cancel event of the operation running in this thread (see EnvManager.cancellable).
_cancel_event: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "uv_envs_cancel", default=None
)
_EXPORT_FORMATS: tuple[ExportFormat, ...] = ("requirements.txt", "pylock.toml")
# States an operation may build a new generation from (rebuilding repairs DAMAGED).
_USABLE = frozenset({EnvStatus.READY, EnvStatus.DAMAGED})


@attrs.frozen
class _Request:
    """A validated create/ensure request."""

    spec: EnvSpec
    digest: str
    interpreter: Interpreter
    refresh: bool = False


class EnvManager:
    """Creates and maintains uv environments under one root.

    Args:
        settings: where and how; ``Settings.from_env()`` by default.
        executor: runs uv; a :class:`~uv_envs.SubprocessUvExecutor` by default.
        metadata: stores ``metadata.json`` records.
        audit: the audit log; SQLite under the root by default.
        publish: called with each :class:`~uv_envs.DomainEvent`.
        python_finder: resolves Python version requests.

    All methods are safe to call from several threads and processes at once.

    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        executor: UvExecutor | None = None,
        metadata: MetadataRepository | None = None,
        audit: AuditLog | None = None,
        publish: events.EventPublisher | None = None,
        python_finder: InterpreterFinder | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.layout = Layout(self.settings.root)
        self.executor: UvExecutor = (
            executor
            if executor is not None
            else SubprocessUvExecutor(find_uv_binary(self.settings.uv_binary))
        )
        self.metadata: MetadataRepository = (
            metadata if metadata is not None else JsonMetadataRepository(self.layout)
        )
        self.audit: AuditLog = audit if audit is not None else SqliteAuditLog(self.layout.audit_db)
        self.publish = publish
        self.uv_options = UvOptions(
            cache_dir=self.settings.effective_cache_dir,
            index=self.settings.index,
            python_downloads=self.settings.python_downloads,
            compile_bytecode=self.settings.compile_bytecode,
            timeout=self.settings.uv_timeout,
        )
        self.python_finder: InterpreterFinder = (
            python_finder
            if python_finder is not None
            else PythonFinder(self.executor, self.uv_options, self.settings.python_search_paths)
        )
        self.lock_store = LockStore(self.layout.lockstore_dir, self.settings.lock_max_age)
        self.venv_store = VenvStore(
            self.layout.store_dir, self.layout.locks_dir, self.settings.lock_timeout
        )
        self.dirs = EnvDirs(self.layout, self.venv_store)
        self.ray_link = RayLinker(self.settings.ray)
        self._root_ready = False
        self._root_lock = threading.Lock()

    # --- create / ensure --------------------------------------------------------------

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
        request = self._request(packages, requirements_text, python, refresh=refresh)
        return self._provide(key, request, replace=False)

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
        request = self._request(packages, requirements_text, python, refresh=refresh)
        return self._provide(key, request, replace=True)

    def _request(
        self,
        packages: Iterable[str],
        requirements_text: str | bytes | None,
        python: str | None,
        *,
        refresh: bool = False,
    ) -> _Request:
        requirements, text = self._requirements(packages, requirements_text)
        interpreter = self.python_finder.find(python or self.settings.default_python)
        spec = EnvSpec(
            packages=requirements,
            python=normalize_python_request(python or self.settings.default_python),
            requirements_text=text,
        )
        return _Request(spec, spec_hash(spec, self.settings.index), interpreter, refresh)

    def _requirements(
        self, packages: Iterable[str], requirements_text: str | bytes | None
    ) -> tuple[tuple[str, ...], str | None]:
        """Validated requirements from both sources, and the text if uv must read it whole."""
        allow_direct = self.settings.allow_direct_references
        requirements = parse_requirements(packages, allow_direct_references=allow_direct)
        if not requirements_text:
            return requirements, None
        from_text, has_options = parse_requirements_text(
            requirements_text,
            allow_options=self.settings.allow_requirements_options,
            allow_direct_references=allow_direct,
        )
        text = None
        if has_options:
            raw = requirements_text
            text = raw.decode() if isinstance(raw, bytes) else raw
        return requirements + from_text, text

    def _provide(self, key: EnvKey, request: _Request, *, replace: bool) -> Environment:
        with self._locked(key):
            existing = self._reconciled(key)
            if (
                existing is not None
                and existing.status is EnvStatus.DAMAGED
                and (existing.spec_hash == request.digest or replace)
            ):
                return self._respec(existing, request)  # rebuilding repairs it
            if existing is not None and existing.status in _USABLE:
                if existing.spec_hash == request.digest:
                    record = self.audit.start(key, "ensure" if replace else "create")
                    self._finish_ok(record, [], {"reused": True})
                    self.dirs.touch(existing)
                    return existing
                if not replace:
                    raise EnvironmentAlreadyExists(
                        f"environment {key} exists with another spec "
                        f"({existing.spec_hash[:12]} != {request.digest[:12]}); "
                        "use ensure() to move it to the new spec, or delete it first"
                    )
                return self._respec(existing, request)
            if existing is not None:
                # FAILED: a create whose rollback did not complete. Start over.
                self._discard(key)
            return self._build_new(key, request)

    def _build_new(self, key: EnvKey, request: _Request) -> Environment:
        env_dir = self.layout.env_dir(key)
        now = time.time()
        environment = Environment(
            key=key,
            env_path=env_dir,
            status=EnvStatus.CREATING,
            spec=request.spec,
            spec_hash=request.digest,
            python_version=request.interpreter.version,
            python_executable=str(request.interpreter.path),
            generation=0,
            pending_generation=1,
            created_at=now,
            updated_at=now,
        )
        details = {"packages": list(request.spec.packages), "python": request.spec.python}
        record = self.audit.start(key, "create", details)
        self._emit(events.EnvironmentCreationStarted(key, details=details))
        results: list[UvResult] = []
        try:
            if env_dir.exists() or env_dir.is_symlink():
                # A folder without metadata: left by a create that died before its first write.
                self._discard(key)
            self.dirs.make(env_dir)
            self.metadata.save(environment)
            gen_dir = self.layout.generation_dir(env_dir, 1)
            gen_dir.mkdir(parents=True)
            resolved = self._write_spec_project(gen_dir, key, request, results)
            installed = self._sync(gen_dir, request.interpreter, results)
            self.dirs.point_current(env_dir, 1)
            self.dirs.link_top_level(env_dir)
            environment = attrs.evolve(
                environment,
                status=EnvStatus.READY,
                generation=1,
                pending_generation=None,
                updated_at=time.time(),
                ray=self.ray_link.describe(request.interpreter),
            )
            self.metadata.save(environment)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self._discard(key)
            self._finish_failed(record, exc, results)
            self._emit(events.EnvironmentCreationFailed(key, details={"error": str(exc)}))
            raise
        self._finish_ok(
            record,
            results,
            {
                "generation": 1,
                "spec_hash": request.digest,
                "resolved": resolved,
                "installed": installed,
            },
        )
        self._emit(
            events.EnvironmentCreated(key, details={"python_version": environment.python_version})
        )
        self.dirs.touch(environment)
        return environment

    def _write_spec_project(
        self, gen_dir: Path, key: EnvKey, request: _Request, results: list[UvResult]
    ) -> bool:
        """Write the project for a spec and lock it; return whether uv resolved."""
        (gen_dir / "pyproject.toml").write_text(
            render_pyproject(key, request.spec.packages, request.spec.python)
        )
        python = str(request.interpreter.path)
        if request.spec.requirements_text is not None:
            requirements_file = gen_dir / "requirements.in"
            requirements_file.write_text(request.spec.requirements_text)
            try:
                self._run(
                    add_command(
                        gen_dir, python, self.uv_options, requirements_file=requirements_file
                    ),
                    "uv add -r failed",
                    results,
                )
            finally:
                requirements_file.unlink(missing_ok=True)
            return True
        return self._resolve_spec(gen_dir, python, request, results)

    def _resolve_spec(
        self, gen_dir: Path, python: str, request: _Request, results: list[UvResult]
    ) -> bool:
        """``uv lock``, or a stored resolution of the same spec that still checks out.

        Holding the spec's lock makes concurrent creates of one spec resolve once.
        """
        spec_lock = self.layout.locks_dir / f"spec-{request.digest[:40]}.lock"
        with _locking.hold(spec_lock, timeout=self.settings.lock_timeout, what="spec"):
            stored = None if request.refresh else self.lock_store.get(request.digest)
            if stored is not None:
                (gen_dir / "uv.lock").write_bytes(stored)
                offline = attrs.evolve(
                    self.uv_options, index=attrs.evolve(self.uv_options.index, offline=True)
                )
                check = self.executor.run(lock_command(gen_dir, python, offline, check=True))
                if check.ok:
                    return False
                (gen_dir / "uv.lock").unlink(missing_ok=True)
            self._run(lock_command(gen_dir, python, self.uv_options), "uv lock failed", results)
            self.lock_store.put(request.digest, (gen_dir / "uv.lock").read_bytes())
            return True

    def _respec(self, environment: Environment, request: _Request) -> Environment:
        key = environment.key
        details = {"packages": list(request.spec.packages), "python": request.spec.python}
        self._emit(events.EnvironmentCreationStarted(key, details=details))
        notes: dict[str, Any] = {}

        def build(gen_dir: Path, results: list[UvResult]) -> None:
            notes["resolved"] = self._write_spec_project(gen_dir, key, request, results)

        try:
            result = self._next_generation(
                environment,
                "ensure",
                build,
                copy_project=False,
                spec=request.spec,
                interpreter=request.interpreter,
                notes=notes,
            )
        except BaseException as exc:
            self._emit(events.EnvironmentCreationFailed(key, details={"error": str(exc)}))
            raise
        self._emit(
            events.EnvironmentCreated(key, details={"generation": result.environment.generation})
        )
        self.dirs.touch(result.environment)
        return result.environment

    @staticmethod
    @contextlib.contextmanager
    def cancellable(cancel: threading.Event) -> Iterator[None]:
        """Operations run in this block stop, and roll back, once ``cancel`` is set.

        uv is stopped at once; the operation raises
        :class:`~uv_envs.OperationCancelled` and leaves the env as it was (a
        create is removed). The gRPC server sets the event when a call's
        deadline passes or its client goes away::

            with manager.cancellable(event):
                manager.ensure(key, packages=[...])
        """
        token = _cancel_event.set(cancel)
        try:
            yield
        finally:
            _cancel_event.reset(token)

    # --- reading ----------------------------------------------------------------------

    def status(self, key: EnvKey) -> StatusReport:
        """The env's status and which of its files exist. Never raises for a missing env."""
        env_dir = self.layout.env_dir(key)
        environment = self.metadata.load(key)
        if environment is not None and environment.status is EnvStatus.CREATING:
            environment = self._recover_if_abandoned(key, environment)
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
        )

    def get(self, key: EnvKey) -> Environment:
        """The env of ``key``; raises :class:`~uv_envs.EnvironmentNotFound` if there is none."""
        environment = self.metadata.load(key)
        if environment is not None and environment.status is EnvStatus.CREATING:
            environment = self._recover_if_abandoned(key, environment)
        if environment is None:
            raise EnvironmentNotFound(f"no environment {key}")
        return environment

    def runtime_env(self, key: EnvKey) -> dict[str, Any]:
        """What a runner needs to use the env (Ray's ``py_executable`` among it).

        Counts as a use of the env for idle cleanup.
        """
        environment = self._require_ready(self.get(key))
        self.dirs.touch(environment)
        return environment.runtime_env()

    def list_environments(
        self, workflow_id: str | None = None, node_id: str | None = None
    ) -> list[Environment]:
        """Every env, optionally narrowed to a workflow and node, sorted by key.

        An env whose creator died is listed as FAILED until it is recovered.
        """
        if workflow_id is not None:
            validate_id(workflow_id, "workflow_id")
        if node_id is not None:
            validate_id(node_id, "node_id")
        found: list[Environment] = []
        for key in self.metadata.keys(workflow_id, node_id):
            try:
                environment = self.metadata.load(key)
            except StorageError:
                continue
            if environment is None:
                continue
            if environment.status is EnvStatus.CREATING and _locking.is_free(
                self.layout.lock_file(key)
            ):
                environment = attrs.evolve(
                    environment, status=EnvStatus.FAILED, error="creation was interrupted"
                )
            found.append(environment)
        return sorted(found, key=lambda e: e.key)

    def dependencies(self, key: EnvKey) -> Dependencies:
        """Declared dependencies and locked versions of the current generation."""
        gen_dir = self.dirs.current_dir(self._require_usable(self.get(key)))
        return Dependencies(key=key, declared=read_declared(gen_dir), locked=read_locked(gen_dir))

    def export(self, key: EnvKey) -> Export:
        """pyproject.toml and uv.lock of the current generation, as text."""
        gen_dir = self.dirs.current_dir(self._require_usable(self.get(key)))
        return Export(
            key=key,
            pyproject_toml=(gen_dir / "pyproject.toml").read_text(),
            uv_lock=(gen_dir / "uv.lock").read_text(),
        )

    def export_as(self, key: EnvKey, fmt: ExportFormat) -> str:
        """The lock exported by ``uv export`` as ``requirements.txt`` or ``pylock.toml``."""
        if fmt not in _EXPORT_FORMATS:
            raise InvalidRequirement(f"unknown export format {fmt!r}; use one of {_EXPORT_FORMATS}")
        gen_dir = self.dirs.current_dir(self._require_usable(self.get(key)))
        result = self.executor.run(export_command(gen_dir, self.uv_options, fmt))
        return raise_for_result(result, f"uv export --format {fmt} failed").stdout

    # --- changing dependencies ---------------------------------------------------------

    def add(
        self,
        key: EnvKey,
        packages: Iterable[str] = (),
        *,
        requirements_text: str | bytes | None = None,
    ) -> OperationResult:
        """Add dependencies (``uv add``) in a new generation, then switch to it."""
        requirements, text = self._requirements(packages, requirements_text)
        if not requirements and text is None:
            raise InvalidRequirement("add needs at least one package")

        def build(gen_dir: Path, results: list[UvResult], python: str) -> None:
            requirements_file = None
            if text is not None:
                requirements_file = gen_dir / "requirements.in"
                requirements_file.write_text(text)
            try:
                self._run(
                    add_command(
                        gen_dir,
                        python,
                        self.uv_options,
                        requirements,
                        requirements_file=requirements_file,
                    ),
                    "uv add failed",
                    results,
                )
            finally:
                if requirements_file is not None:
                    requirements_file.unlink(missing_ok=True)

        return self._change_dependencies(key, "add", build, requirements, events.DependenciesAdded)

    def update(self, key: EnvKey, packages: Iterable[str] = ()) -> OperationResult:
        """Upgrade locked versions: of ``packages``, or of everything when none are given.

        A bare name upgrades within the declared constraint (``uv lock
        --upgrade-package``); a requirement with a specifier also replaces the
        declared constraint (``uv add --upgrade-package``).
        """
        allow_direct = self.settings.allow_direct_references
        requirements = parse_requirements(packages, allow_direct_references=allow_direct)
        parsed = [parse_requirement(r, allow_direct_references=allow_direct) for r in requirements]
        bare = [
            r.name
            for r in parsed
            if not r.specifier and not r.url and not r.extras and not r.marker
        ]
        constrained = [str(r) for r in parsed if r.name not in bare]

        def build(gen_dir: Path, results: list[UvResult], python: str) -> None:
            if not parsed:
                self._run(
                    lock_command(gen_dir, python, self.uv_options, upgrade=True),
                    "uv lock --upgrade failed",
                    results,
                )
                return
            if bare:
                self._run(
                    lock_command(gen_dir, python, self.uv_options, upgrade_packages=bare),
                    "uv lock --upgrade-package failed",
                    results,
                )
            if constrained:
                invocation = add_command(gen_dir, python, self.uv_options, constrained)
                names = [r.name for r in parsed if r.name not in bare]
                upgrade = tuple(arg for n in names for arg in ("--upgrade-package", n))
                separator = invocation.args.index("--")
                args = invocation.args[:separator] + upgrade + invocation.args[separator:]
                self._run(attrs.evolve(invocation, args=args), "uv add --upgrade failed", results)

        return self._change_dependencies(
            key, "update", build, requirements, events.DependenciesUpdated
        )

    def remove(self, key: EnvKey, packages: Iterable[str]) -> OperationResult:
        """Remove declared dependencies (``uv remove``) in a new generation."""
        allow_direct = self.settings.allow_direct_references
        requirements = parse_requirements(packages, allow_direct_references=allow_direct)
        if not requirements:
            raise InvalidRequirement("remove needs at least one package")
        names = [
            parse_requirement(r, allow_direct_references=allow_direct).name for r in requirements
        ]

        def check(environment: Environment) -> None:
            declared = {_name_of(d) for d in read_declared(self.dirs.current_dir(environment))}
            missing = [n for n in names if str(canonicalize_name(n)) not in declared]
            if missing:
                raise InvalidRequirement(f"not declared in environment {key}: {', '.join(missing)}")

        def build(gen_dir: Path, results: list[UvResult], python: str) -> None:
            self._run(
                remove_command(gen_dir, python, self.uv_options, names), "uv remove failed", results
            )

        return self._change_dependencies(
            key, "remove", build, requirements, events.DependenciesRemoved, check=check
        )

    def sync(self, key: EnvKey) -> OperationResult:
        """Rebuild the venv exactly from the env's uv.lock, as a new generation.

        The new venv is built afresh rather than linked from the shared store,
        so ``sync`` also repairs a damaged env; for a ``DAMAGED`` env uv
        fetches and unpacks every package again, since its cache shares the
        installed files' bytes.
        """
        with self._locked(key):
            environment = self._require_usable(self._require(key))
            try:
                result = self._next_generation(
                    environment,
                    "sync",
                    lambda _gen, _results: None,
                    copy_project=True,
                    shared=False,
                    refresh=environment.status is EnvStatus.DAMAGED,
                    spec=environment.spec,
                )
            except BaseException as exc:
                self._emit(events.EnvironmentSyncFailed(key, details={"error": str(exc)}))
                raise
        self._emit(
            events.EnvironmentSynced(key, details={"generation": result.environment.generation})
        )
        return result

    def _change_dependencies(
        self,
        key: EnvKey,
        operation: str,
        build: Callable[[Path, list[UvResult], str], None],
        requirements: tuple[str, ...],
        succeeded: type[events.DomainEvent],
        *,
        check: Callable[[Environment], None] | None = None,
    ) -> OperationResult:
        details = {"packages": list(requirements)}
        with self._locked(key):
            environment = self._require_usable(self._require(key))
            if check is not None:
                check(environment)
            python = environment.python_executable
            try:
                result = self._next_generation(
                    environment,
                    operation,
                    lambda gen_dir, results: build(gen_dir, results, python),
                    copy_project=True,
                    details=details,
                )
            except BaseException as exc:
                self._emit(
                    events.DependencyOperationFailed(
                        key, details={**details, "operation": operation, "error": str(exc)}
                    )
                )
                raise
        self._emit(succeeded(key, details={**details, "generation": result.environment.generation}))
        return result

    def _next_generation(
        self,
        environment: Environment,
        operation: str,
        build: Callable[[Path, list[UvResult]], None],
        *,
        copy_project: bool,
        spec: EnvSpec | None = None,
        interpreter: Interpreter | None = None,
        details: Mapping[str, Any] | None = None,
        shared: bool = True,
        refresh: bool = False,
        notes: Mapping[str, Any] | None = None,
    ) -> OperationResult:
        """Build generation N+1 beside the live one and switch to it; the caller holds the lock."""
        key = environment.key
        env_dir = environment.env_path
        number = max([environment.generation, *self.dirs.generation_numbers(env_dir)]) + 1
        record = self.audit.start(key, operation, dict(details or {}))
        results: list[UvResult] = []
        started = time.monotonic()
        gen_dir = self.layout.generation_dir(env_dir, number)
        self.metadata.save(attrs.evolve(environment, pending_generation=number))
        try:
            gen_dir.mkdir(parents=True)
            if copy_project:
                current = self.layout.generation_dir(env_dir, environment.generation)
                for name in _PROJECT_FILES:
                    shutil.copy2(current / name, gen_dir / name)
            build(gen_dir, results)
            python_interpreter = interpreter or Interpreter(
                Path(environment.python_executable), environment.python_version
            )
            installed = self._sync(
                gen_dir, python_interpreter, results, shared=shared, refresh=refresh
            )
            if spec is None:
                spec = EnvSpec(packages=read_declared(gen_dir), python=environment.spec.python)
            committed = attrs.evolve(
                environment,
                spec=spec,
                spec_hash=spec_hash(spec, self.settings.index),
                python_version=python_interpreter.version,
                python_executable=str(python_interpreter.path),
                ray=self.ray_link.describe(python_interpreter),
                generation=number,
                pending_generation=None,
                status=EnvStatus.READY,
                error=None,
                retired=(
                    *environment.retired,
                    RetiredGeneration(environment.generation, time.time()),
                ),
                updated_at=time.time(),
            )
        except BaseException as exc:
            self.dirs.remove_generation(env_dir, number)
            with contextlib.suppress(Exception):
                self.metadata.save(environment)
            self._finish_failed(record, exc, results)
            raise
        # The commit point: from here the new generation is the env, even after a crash.
        self.metadata.save(committed)
        self.dirs.point_current(env_dir, number)
        self._finish_ok(
            record,
            results,
            {
                "generation": number,
                "spec_hash": committed.spec_hash,
                "installed": installed,
                **(notes or {}),
            },
        )
        return OperationResult(
            environment=committed,
            operation=operation,
            stdout="".join(r.stdout for r in results),
            stderr="".join(r.stderr for r in results),
            exit_code=0,
            duration_ms=int((time.monotonic() - started) * 1000),
        )

    # --- delete / cleanup --------------------------------------------------------------

    def delete(self, key: EnvKey, *, force: bool = False) -> DeleteResult:
        """Remove the env. A missing env is a success that says ``NOT_FOUND``.

        An env leased by a live process raises :class:`~uv_envs.EnvironmentInUse`
        unless ``force``.
        """
        return self.delete_within(key, self.settings.lock_timeout, force=force)

    def delete_within(self, key: EnvKey, timeout: float, *, force: bool = False) -> DeleteResult:
        """:meth:`delete`, waiting at most ``timeout`` seconds for the env's lock."""
        with self._locked(key, timeout=timeout):
            environment = self.metadata.load(key)
            env_dir = self.layout.env_dir(key)
            if environment is None and not env_dir.exists():
                return DeleteResult(key=key, status="NOT_FOUND")
            leases = self.dirs.live_leases(key)
            if leases and not force:
                raise EnvironmentInUse(
                    f"environment {key} is leased by {len(leases)} running process(es); "
                    "delete it with force=True, or wait for the leases to end"
                )
            record = self.audit.start(key, "delete", {"forced": bool(leases)})
            try:
                self._discard(key)
            except BaseException as exc:
                self._finish_failed(record, exc, [])
                raise
            self._finish_ok(record, [], {})
        self._emit(events.EnvironmentDeleted(key))
        return DeleteResult(key=key, status="DELETED")

    def cleanup(  # noqa: C901 - two passes (idle, then budget) read best in one place
        self, idle_seconds: float | None = None, *, max_bytes: int | None = None
    ) -> CleanupReport:
        """Delete idle envs, then least recently used ones while over a disk budget.

        Args:
            idle_seconds: delete envs with no operation and no hand-out
                (``ensure``, ``create``, ``runtime_env``, ``lease``) for this
                long, and prune generations retired this long ago.
            max_bytes: afterwards, while envs and the venv store use more than
                this, delete the least recently used env.

        Envs busy with an operation, and envs leased by a live process, are
        skipped and reported. Store entries nothing links and stored locks
        past ``lock_max_age`` are pruned.

        """
        if idle_seconds is None and max_bytes is None:
            raise InvalidInput("cleanup needs idle_seconds, max_bytes or both")
        if idle_seconds is not None and (math.isnan(idle_seconds) or idle_seconds < 0):
            # NaN fails every comparison, so it would otherwise read as "all idle".
            raise InvalidInput(f"idle_seconds must be a number >= 0, not {idle_seconds!r}")
        if max_bytes is not None and (math.isnan(max_bytes) or max_bytes < 0):
            raise InvalidInput(f"max_bytes must be a whole number >= 0, not {max_bytes!r}")
        idle = math.inf if idle_seconds is None else idle_seconds
        checked_at = time.time()
        outcomes: dict[str, list[EnvKey]] = {"deleted": [], "busy": [], "leased": []}
        pruned = 0
        survivors: list[tuple[float, EnvKey]] = []
        for key in list(self.metadata.keys()):
            outcome, count, last_used = self._cleanup_one(key, idle, checked_at, "idle")
            pruned += count
            if outcome in outcomes:
                outcomes[outcome].append(key)
            elif outcome == "kept":
                survivors.append((last_used, key))
        store_pruned = self.venv_store.prune()
        bytes_in_use = None
        if max_bytes is not None:
            env_bytes = tree_size(self.layout.envs_dir)
            bytes_in_use = env_bytes + sum(self.venv_store.sizes().values())
            for _, key in sorted(survivors):
                if bytes_in_use <= max_bytes:
                    break
                own = tree_size(self.layout.env_dir(key))
                outcome, _, _ = self._cleanup_one(key, -1.0, checked_at, "disk budget")
                if outcome == "deleted":
                    outcomes["deleted"].append(key)
                    store_pruned += self.venv_store.prune()
                    env_bytes -= own
                    bytes_in_use = env_bytes + sum(self.venv_store.sizes().values())
                elif outcome in outcomes:
                    outcomes[outcome].append(key)
        report = CleanupReport(
            deleted=tuple(outcomes["deleted"]),
            skipped_busy=tuple(outcomes["busy"]),
            pruned_generations=pruned,
            checked_at=checked_at,
            pruned_store_entries=store_pruned,
            pruned_locks=self.lock_store.prune(),
            skipped_leased=tuple(outcomes["leased"]),
            bytes_in_use=bytes_in_use,
        )
        self._emit(
            events.EnvironmentCleanupCompleted(
                None,
                details={
                    "deleted": [str(k) for k in report.deleted],
                    "skipped_busy": [str(k) for k in report.skipped_busy],
                    "skipped_leased": [str(k) for k in report.skipped_leased],
                },
            )
        )
        return report

    def _cleanup_one(
        self, key: EnvKey, idle_seconds: float, checked_at: float, reason: str
    ) -> tuple[str, int, float]:
        """Delete one env if idle and unleased: ``(outcome, generations pruned, last used)``."""
        self._ensure_root()
        lock = self.layout.lock_file(key)
        if not _locking.try_acquire(lock):
            return "busy", 0, 0.0
        try:
            environment = self._reconciled(key)
            if environment is None:
                return "gone", 0, 0.0
            pinned = set(self.dirs.live_leases(key))
            last_used = self.dirs.last_used(environment)
            pruned = self._prune_generations(environment, checked_at - idle_seconds, pinned)
            if checked_at - last_used <= idle_seconds:
                return "kept", pruned, last_used
            if pinned:
                return "leased", pruned, last_used
            record = self.audit.start(key, "cleanup", {"reason": reason})
            self._discard(key)
            self._finish_ok(record, [], {})
            self._emit(events.EnvironmentDeleted(key, details={"reason": reason}))
            return "deleted", pruned, last_used
        finally:
            _locking.release(lock)

    def _prune_generations(
        self, environment: Environment, retired_before: float, pinned: set[int]
    ) -> int:
        drop = [
            r
            for r in environment.retired
            if r.retired_at < retired_before and r.generation not in pinned
        ]
        if not drop:
            return 0
        keep = tuple(r for r in environment.retired if r not in drop)
        self.metadata.save(attrs.evolve(environment, retired=keep))
        for retired in drop:
            self.dirs.remove_generation(environment.env_path, retired.generation)
        return len(drop)

    # --- leases and verification --------------------------------------------------------

    @contextlib.contextmanager
    def lease(self, key: EnvKey) -> Iterator[Environment]:
        """Hold the env in use for the duration of a run (across processes).

        While the lease is held, ``delete`` refuses the env (unless forced),
        ``cleanup`` skips it, and the generation it yields is kept even after
        the env moves on: run the node with ``pinned_python_path``. The lease
        ends with the block, or with the holder's process.
        """
        with contextlib.ExitStack() as stack:
            with self._locked(key):
                environment = self._require_ready(self._require(key))
                stack.enter_context(self.dirs.hold_lease(key, environment.generation))
            self.dirs.touch(environment)
            yield environment

    def verify(self, key: EnvKey) -> VerifyReport:
        """Check that the venv matches its lock and its interpreter starts.

        Compares the installed distributions with ``uv.lock`` and every file
        with the hash in its ``RECORD``. A failed check marks the env
        ``DAMAGED`` (and its shared venv, so it is not linked again); ``sync``
        repairs it.
        """
        with self._locked(key):
            environment = self._require_usable(self._require(key))
            record = self.audit.start(key, "verify")
            gen_dir = self.dirs.current_dir(environment)
            problems, checked, damaged_packages = check_venv(
                gen_dir / ".venv", environment.pinned_python_path, read_locked(gen_dir)
            )
            if damaged_packages:
                # Installed files are hard links into uv's cache: drop the damaged
                # packages from it, so no later install links the same bytes.
                self.executor.run(cache_clean_command(self.uv_options, damaged_packages))
            if problems:
                damaged = attrs.evolve(
                    environment, status=EnvStatus.DAMAGED, error="; ".join(problems[:5])
                )
                self.metadata.save(damaged)
                with contextlib.suppress(OSError):
                    self.venv_store.mark_damaged(gen_dir / ".venv")
            elif environment.status is EnvStatus.DAMAGED:
                self.metadata.save(attrs.evolve(environment, status=EnvStatus.READY, error=None))
            self._finish_ok(record, [], {"problems": list(problems), "checked_files": checked})
        return VerifyReport(key=key, problems=tuple(problems), checked_files=checked)

    # --- audit ------------------------------------------------------------------------

    def operations(
        self,
        workflow_id: str | None = None,
        node_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> OperationPage:
        """The audit trail, newest first, filtered and paged."""
        return self.audit.query(
            workflow_id=workflow_id or None,
            node_id=node_id or None,
            status=status or None,
            limit=limit,
            offset=offset,
        )

    def delete_operations(self, workflow_id: str, node_id: str | None = None) -> DeletedOperations:
        """Remove the audit records of a workflow, or of one node of it."""
        EnvKey(workflow_id, node_id or "x")  # validates both ids
        return self.audit.delete(workflow_id, node_id or None)

    # --- recovery ---------------------------------------------------------------------

    def recover(self) -> list[EnvKey]:
        """Repair what crashed processes left behind; return the keys that needed it.

        Rolls back creates whose process died, drops half-built generations
        (stopping any uv still working in them), re-points ``current`` links,
        removes temp files of interrupted writes, half-built store venvs and the
        trash, and closes audit records of dead processes. Envs busy with a live
        operation are left alone.
        """
        repaired: list[EnvKey] = []
        for key in sorted({*self.metadata.keys(), *self.layout.keys_on_disk()}):
            lock_file = self.layout.lock_file(key)
            if not _locking.is_free(lock_file):
                continue
            if not _locking.try_acquire(lock_file):
                continue
            try:
                repairs: list[str] = []
                self._reconciled(key, repairs)
                if repairs:
                    repaired.append(key)
            finally:
                _locking.release(lock_file)
        self.dirs.empty_trash()
        self.venv_store.remove_incomplete()
        self.lock_store.remove_temporaries(self.layout.locks_dir)
        self._close_dead_records()
        return repaired

    def _reconciled(self, key: EnvKey, repairs: list[str] | None = None) -> Environment | None:
        """The env's record after repairing what a dead process left; the caller holds the lock.

        Each repair is described in ``repairs`` and recorded in the audit log.
        """
        repairs = [] if repairs is None else repairs
        env_dir = self.layout.env_dir(key)
        environment = self.metadata.load(key)
        if environment is None:
            if env_dir.exists():
                self._discard(key)
                repairs.append("removed a folder without metadata")
            return None
        if environment.status is EnvStatus.CREATING:
            stop_processes_in(env_dir)  # a uv the dead creator started
            record = self.audit.start(key, "recover", {"found": "CREATING"})
            self._discard(key)
            self.audit.finish(
                record, SUCCESS, error=None, metadata={"action": "rolled back create"}
            )
            self._emit(
                events.EnvironmentCreationFailed(
                    key, details={"error": "the creating process died; rolled back"}
                )
            )
            repairs.append("rolled back an interrupted create")
            return None
        found = len(repairs)
        repairs += [f"removed temp file {name}" for name in self.dirs.remove_temporaries(env_dir)]
        if environment.pending_generation is not None:
            pending = self.layout.generation_dir(env_dir, environment.pending_generation)
            stop_processes_in(pending)
            self.dirs.remove_generation(env_dir, environment.pending_generation)
            repairs.append(f"removed half-built generation {environment.pending_generation}")
            environment = attrs.evolve(environment, pending_generation=None)
            self.metadata.save(environment)
        if environment.status in _USABLE:
            self._repair_generations(environment, repairs)
        if len(repairs) > found:
            record = self.audit.start(key, "recover")
            self.audit.finish(record, SUCCESS, metadata={"repairs": repairs[found:]})
        return environment

    def _repair_generations(self, environment: Environment, repairs: list[str]) -> None:
        env_dir = environment.env_path
        try:
            actual = os.readlink(env_dir / "current")
        except OSError:
            actual = None
        if actual != f"gens/{environment.generation}":
            self.dirs.point_current(env_dir, environment.generation)
            repairs.append(f"re-pointed current at generation {environment.generation}")
        known = {environment.generation, *(r.generation for r in environment.retired)}
        for number in self.dirs.generation_numbers(env_dir):
            if number not in known:
                self.dirs.remove_generation(env_dir, number)
                repairs.append(f"removed stray generation {number}")

    def _recover_if_abandoned(self, key: EnvKey, environment: Environment) -> Environment | None:
        """For a CREATING env seen without the lock: roll it back if its creator is gone."""
        if not _locking.is_free(self.layout.lock_file(key)):
            return environment
        try:
            with self._locked(key, timeout=0):
                return self._reconciled(key)
        except TimeoutError:
            return environment

    def _close_dead_records(self) -> None:
        offset = 0
        while True:
            page = self.audit.query(status=RUNNING, limit=500, offset=offset)
            if not page.items:
                return
            for record in page.items:
                pid = record.metadata.get("pid")
                if isinstance(pid, int) and not _pid_alive(pid):
                    self.audit.finish(record.id, FAILED, error="interrupted: the process died")
                else:
                    offset += 1

    # --- helpers ----------------------------------------------------------------------

    def _ensure_root(self) -> None:
        if self._root_ready:
            return
        with self._root_lock:
            for directory in (self.layout.envs_dir, self.layout.locks_dir, self.layout.trash_dir):
                directory.mkdir(parents=True, exist_ok=True)
            self._root_ready = True

    @contextlib.contextmanager
    def _locked(self, key: EnvKey, timeout: float | None = None) -> Iterator[None]:
        self._ensure_root()
        with _locking.hold(
            self.layout.lock_file(key),
            timeout=self.settings.lock_timeout if timeout is None else timeout,
            what=str(key),
        ):
            yield

    def _require(self, key: EnvKey) -> Environment:
        environment = self._reconciled(key)
        if environment is None:
            raise EnvironmentNotFound(f"no environment {key}")
        return environment

    @staticmethod
    def _require_usable(environment: Environment) -> Environment:
        if environment.status not in _USABLE:
            raise EnvironmentNotReady(
                f"environment {environment.key} is {environment.status.value}"
                + (f": {environment.error}" if environment.error else "")
            )
        return environment

    @staticmethod
    def _require_ready(environment: Environment) -> Environment:
        if environment.status is not EnvStatus.READY:
            raise EnvironmentNotReady(
                f"environment {environment.key} is {environment.status.value}"
                + (f": {environment.error}" if environment.error else "")
            )
        return environment

    def _sync(
        self,
        gen_dir: Path,
        interpreter: Interpreter,
        results: list[UvResult],
        *,
        shared: bool = True,
        refresh: bool = False,
    ) -> bool:
        """Link the generation to the store's venv for its lock, building it if new; True if built.

        Unshared, the venv is built privately in the generation: ``sync`` uses
        that to rebuild from the lock without trusting any existing bytes.
        """
        lock_text = (gen_dir / "uv.lock").read_text()
        self.ray_link.check_lock(lock_text, interpreter)
        if not shared:
            with install_slot(self.layout.locks_dir, self.settings.max_concurrent_installs):
                self._run(
                    sync_command(gen_dir, str(interpreter.path), self.uv_options, refresh=refresh),
                    "uv sync --frozen failed",
                    results,
                )
            self.ray_link.link(gen_dir / ".venv", interpreter)
            return True
        entry_id = venv_id(
            lock_text,
            interpreter,
            compile_bytecode=self.settings.compile_bytecode,
            ray_link=self.ray_link.store_identity(interpreter),
        )

        def build(venv: Path) -> None:
            with install_slot(self.layout.locks_dir, self.settings.max_concurrent_installs):
                self._run(
                    sync_command(gen_dir, str(interpreter.path), self.uv_options, venv=venv),
                    "uv sync --frozen failed",
                    results,
                )
            self.ray_link.link(venv, interpreter)  # before the store seals the entry

        return self.venv_store.link(gen_dir, entry_id, build)

    def _run(self, invocation: UvInvocation, message: str, results: list[UvResult]) -> UvResult:
        cancel = _cancel_event.get()
        if cancel is not None:
            if cancel.is_set():
                raise OperationCancelled(f"{message.split(' failed', maxsplit=1)[0]} was cancelled")
            invocation = attrs.evolve(invocation, cancel=cancel)
        result = self.executor.run(invocation)
        results.append(result)
        return raise_for_result(result, message)

    def _discard(self, key: EnvKey) -> None:
        self.metadata.discard(key)
        self.dirs.remove(key)

    def _emit(self, event: events.DomainEvent) -> None:
        events.safe_publish(self.publish, event)

    def _finish_ok(self, record: int, results: list[UvResult], metadata: Mapping[str, Any]) -> None:
        self.audit.finish(
            record,
            SUCCESS,
            stdout="".join(r.stdout for r in results),
            stderr="".join(r.stderr for r in results),
            exit_code=results[-1].exit_code if results else None,
            metadata=metadata,
        )

    def _finish_failed(self, record: int, exc: BaseException, results: list[UvResult]) -> None:
        stdout = "".join(r.stdout for r in results)
        stderr = "".join(r.stderr for r in results)
        exit_code = results[-1].exit_code if results else None
        if isinstance(exc, UvError):
            stdout = stdout or exc.stdout
            stderr = stderr or exc.stderr
            exit_code = exc.exit_code
        with contextlib.suppress(Exception):
            self.audit.finish(
                record,
                FAILED,
                stdout=stdout,
                stderr=stderr,
                exit_code=exit_code,
                error=f"{type(exc).__name__}: {exc}",
            )


def _name_of(requirement: str) -> str:
    return str(canonicalize_name(Requirement(requirement).name))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
