"""Create and ensure: a new env from a spec, or an existing one moved to a new spec.

Resolution is shared between keys: a spec resolved within
``Settings.lock_max_age`` reuses the stored lock (without uv when its record
vouches for it, else checked offline by uv; see ``_resolutions``), and the
spec's lock (``locks/spec-<hash>.lock``) makes concurrent creates of one spec
resolve once.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import attrs

from uv_envs._bytecode.compiler import CompileJob, cost_notes
from uv_envs._errors import EnvironmentAlreadyExists, StorageError, UvEnvsError
from uv_envs._events import domain as events
from uv_envs._events.records import Phase
from uv_envs._locks import locks
from uv_envs._models import Environment, EnvKey, EnvStatus
from uv_envs._reports import Provisioned, ProvisionOutcome
from uv_envs._store.damage import effective
from uv_envs._store.project import render_pyproject
from uv_envs._store.resolutions import Resolution
from uv_envs._uv.commands import add_command, lock_command
from uv_envs._uv.executor import UvResult

from .access import USABLE, EnvAccess, Locked
from .generations import GenerationPlan, GenerationSwitch
from .install import Installer
from .operation import Operation, audited
from .requests import ProvisionRequest
from .services import Services


@attrs.define
class ReadyWatch:
    """Whether the env of ``key`` is READY with the spec ``digest``, read without its lock.

    READY means as a locked read would find it with nothing to repair: its
    record READY with this spec, no generation in progress, ``current``
    pointing at its generation, its shared venv not marked damaged; anything
    else is left to the locked path. Every record write is an atomic rename
    and READY is written last, once the env is whole, so the answer is never
    of a half-built env; it is handed out only under the lock's shared side,
    read again there (:meth:`Provisioner.provide`). Asked once at
    construction, then (as the lock's ``unless``) each time a holder of the
    lock lets go: the record is read again only when its file was replaced.
    """

    services: Services
    key: EnvKey
    digest: str
    found: Environment | None = attrs.field(default=None, init=False)
    _path: str = attrs.field(default="", init=False)
    _seen: tuple[int, int, int] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        layout = self.services.layout
        self._path = str(layout.metadata_file(layout.env_dir(self.key)))
        self()

    def __call__(self) -> bool:
        """Whether it is READY now (then ``found`` is its record)."""
        if self.found is not None:
            return True
        try:
            stat = os.stat(self._path)  # noqa: PTH116 - a str path: no Path object per poll
        except OSError:
            return False
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            self._seen = seen
            self.found = self.read()
        return self.found is not None

    def read(self) -> Environment | None:
        """The record if it is READY with the spec now, read afresh; else None."""
        services = self.services
        try:
            environment = services.metadata.load(self.key)
        except UvEnvsError:
            return None  # unreadable: the locked path reports it
        if (
            environment is None
            or environment.status is not EnvStatus.READY
            or environment.pending_generation is not None
            or environment.spec_hash != self.digest
        ):
            return None
        if not services.dirs.points_at(environment.env_path, environment.generation):
            return None  # left by a dead switch: the locked path re-points it
        if effective(services.layout, environment).status is not EnvStatus.READY:
            return None  # DAMAGED: the locked path rebuilds it
        return environment


@attrs.frozen
class Provisioner:
    """Builds envs from specs."""

    services: Services
    access: EnvAccess
    installer: Installer
    switch: GenerationSwitch

    def provide(self, key: EnvKey, request: ProvisionRequest, *, replace: bool) -> Environment:
        """The env of ``key`` for the request (see ``EnvManager.create`` and ``ensure``).

        An env already READY with the spec is handed out under the shared side
        of its lock, so the callers waiting out one install (N tasks on a node
        needing one new env) stop polling for the lock once the install
        commits and are handed the env together, not one after another.
        """
        ready = ReadyWatch(self.services, key, request.digest)
        if ready.found is None:
            with self.access.locked_unless(key, ready) as token:
                if token is not None:
                    environment, _ = self._reach(token, request, replace=replace)
                    return environment
        # Seen READY: hand it out under the shared side of its lock, beside the other
        # readers, after any holder (the install's tail, a delete) let go; read again
        # there, since a delete or a change may have come between.
        with self.access.shared(key) as shared:
            found = ready.read() if shared else None
            if found is not None:
                return self._reuse(key, found, replace=replace)
        with self.access.locked(key) as token:
            environment, _ = self._reach(token, request, replace=replace)
            return environment

    def provision(self, key: EnvKey, request: ProvisionRequest, *, replace: bool) -> Provisioned:
        """As :meth:`provide`, and say what it did and read the project, all under one lock."""
        with self.access.locked(key) as token:
            environment, outcome = self._reach(token, request, replace=replace)
            gen_dir = self.services.dirs.current_dir(environment)
            pyproject = (gen_dir / "pyproject.toml").read_text()
            return Provisioned(environment, outcome, pyproject)

    def lock_only(self, key: EnvKey, request: ProvisionRequest) -> tuple[str, str]:
        """The spec's ``pyproject.toml`` and ``uv.lock``, resolved (or reused), and no venv.

        For a caller that hands the lock on to be installed elsewhere (a Ray
        driver): the project a create of ``key`` would write, locked exactly as
        that create would lock it (the same stored resolutions, the spec's lock
        single-flighting ``uv lock``), in a scratch folder under the root's
        trash, so a process that dies meanwhile leaves it to the root's
        recovery. Audited as ``lock``; nothing of ``key``'s env is touched.
        """
        services = self.services
        services.layout.trash_dir.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="lock-", dir=services.layout.trash_dir))
        try:
            details = {"packages": list(request.spec.packages), "python": request.spec.python}
            with audited(services, key, "lock", details) as operation:
                self.write_spec_project(scratch, key, request, operation)
                return (scratch / "pyproject.toml").read_text(), (scratch / "uv.lock").read_text()
        except FileNotFoundError as exc:
            if scratch.is_dir():
                raise  # not about the scratch folder (uv itself missing: UvNotFound)
            # Only a recovery emptying the trash at this moment removes the scratch folder.
            msg = f"the scratch project of {key} went while it was being locked; try again"
            raise StorageError(msg) from exc
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _reach(
        self, token: Locked, request: ProvisionRequest, *, replace: bool
    ) -> tuple[Environment, ProvisionOutcome]:
        key = token.key
        existing = self.access.current(token)
        if existing is None:
            return self._build_new(token, request), ProvisionOutcome.CREATED
        # DAMAGED when its shared venv is, so the rebuild below repairs that too.
        existing = effective(self.services.layout, existing)
        same_spec = existing.spec_hash == request.digest
        if existing.status is EnvStatus.DAMAGED and (same_spec or replace):
            # Rebuilding repairs it.
            return self._respec(token, existing, request), ProvisionOutcome.REBUILT
        if existing.status not in USABLE:
            # FAILED: a create whose rollback did not complete. Start over.
            self.services.discard(key)
            return self._build_new(token, request), ProvisionOutcome.CREATED
        if same_spec:
            return self._reuse(key, existing, replace=replace), ProvisionOutcome.REUSED
        if not replace:
            raise EnvironmentAlreadyExists(
                f"environment {key} exists with another spec "
                f"({existing.spec_hash[:12]} != {request.digest[:12]}); "
                "use ensure() to move it to the new spec, or delete it first"
            )
        return self._respec(token, existing, request), ProvisionOutcome.REBUILT

    def _reuse(self, key: EnvKey, existing: Environment, *, replace: bool) -> Environment:
        """Hand out a READY env of the spec asked: an audit row, no change to the env."""
        with audited(self.services, key, "ensure" if replace else "create") as op:
            op.note(reused=True)
            job = self.note_cost(self.services.dirs.current_dir(existing), op)
        self.services.bytecode.start(job)
        self.services.dirs.touch(existing)
        return existing

    def _build_new(self, token: Locked, request: ProvisionRequest) -> Environment:
        services, key = self.services, token.key
        env_dir = services.layout.env_dir(key)
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
        services.emit(events.EnvironmentCreationStarted(key, details=details))
        with audited(
            services,
            key,
            "create",
            details,
            failure_event=lambda exc: events.EnvironmentCreationFailed(
                key, details={"error": str(exc)}
            ),
        ) as operation:
            try:
                environment = self._build_first_generation(environment, request, operation)
            except BaseException:
                with contextlib.suppress(Exception):
                    services.discard(key)
                raise
            operation.note(generation=1, spec_hash=request.digest)
            job = self.note_cost(services.layout.generation_dir(env_dir, 1), operation)
        services.bytecode.start(job)  # after the audit row: the create is done
        services.emit(
            events.EnvironmentCreated(key, details={"python_version": environment.python_version})
        )
        services.dirs.touch(environment)
        return environment

    def _build_first_generation(
        self, environment: Environment, request: ProvisionRequest, operation: Operation
    ) -> Environment:
        services, env_dir = self.services, environment.env_path
        if env_dir.exists() or env_dir.is_symlink():
            # A folder without metadata: left by a create that died before its first write.
            services.discard(environment.key)
        services.dirs.make(env_dir)
        services.metadata.save(environment)
        gen_dir = services.layout.generation_dir(env_dir, 1)
        gen_dir.mkdir(parents=True)
        packages = self.write_spec_project(gen_dir, environment.key, request, operation)
        installed = self.installer.install(
            gen_dir, request.interpreter, operation, packages=packages
        )
        operation.note(installed=installed)
        services.progress(Phase.LINKING)
        services.dirs.point_current(env_dir, 1)
        services.dirs.link_top_level(env_dir)
        ready = attrs.evolve(
            environment,
            status=EnvStatus.READY,
            generation=1,
            pending_generation=None,
            updated_at=time.time(),
            ray=services.ray_link.describe(request.interpreter),
        )
        services.metadata.save(ready)
        return ready

    def _respec(
        self, token: Locked, environment: Environment, request: ProvisionRequest
    ) -> Environment:
        key = token.key
        details = {"packages": list(request.spec.packages), "python": request.spec.python}
        self.services.emit(events.EnvironmentCreationStarted(key, details=details))
        plan = GenerationPlan(
            "ensure", copy_project=False, spec=request.spec, interpreter=request.interpreter
        )
        result = self.switch.next(
            token,
            environment,
            plan,
            lambda gen_dir, operation: self.write_spec_project(gen_dir, key, request, operation),
            failure_event=lambda exc: events.EnvironmentCreationFailed(
                key, details={"error": str(exc)}
            ),
        )
        self.services.emit(
            events.EnvironmentCreated(key, details={"generation": result.environment.generation})
        )
        self.services.dirs.touch(result.environment)
        return result.environment

    def note_cost(self, gen_dir: Path, operation: Operation) -> CompileJob | None:
        """Note the uv runs and the bytecode of ``gen_dir``'s venv; the compile to start after."""
        state, job = self.services.bytecode.plan(gen_dir)
        operation.note(**cost_notes(len(operation.results), state))
        return job

    def write_spec_project(
        self, gen_dir: Path, key: EnvKey, request: ProvisionRequest, operation: Operation
    ) -> str | None:
        """Write the project for a spec and lock it; notes whether uv resolved.

        Returns the lock's packages digest when it is known without parsing
        the lock again (None after ``uv add -r``).
        """
        spec = request.spec
        (gen_dir / "pyproject.toml").write_text(render_pyproject(key, spec.packages, spec.python))
        python = str(request.interpreter.path)
        if spec.requirements_text is None:
            resolution = self._lock_spec(gen_dir, python, request, operation)
            operation.note(resolved=resolution.resolved)
            return resolution.packages
        requirements_file = gen_dir / "requirements.in"
        requirements_file.write_text(spec.requirements_text)
        try:
            operation.run(
                add_command(
                    gen_dir,
                    python,
                    self.services.uv_options,
                    requirements_file=requirements_file,
                ),
                "uv add -r",
            )
        finally:
            requirements_file.unlink(missing_ok=True)
        operation.note(resolved=True)
        return None

    def _lock_spec(
        self, gen_dir: Path, python: str, request: ProvisionRequest, operation: Operation
    ) -> Resolution:
        """``uv lock``, or a stored resolution of the same spec (see ``_resolutions``).

        A stored lock its record vouches for is taken without the spec's lock
        (no uv runs, so there is nothing to single-flight); otherwise holding
        the spec's lock makes concurrent creates of one spec resolve once.
        """
        services = self.services
        resolutions = services.resolutions
        if not request.refresh:
            trusted = resolutions.trusted(request.digest, request.spec, gen_dir)
            if trusted is not None:
                return trusted
        with locks.hold(
            services.layout.spec_lock(request.digest),
            timeout=services.settings.lock_timeout,
            what="spec",
        ):
            if not request.refresh:

                def check() -> UvResult:
                    options = services.uv_options
                    offline = attrs.evolve(options, index=attrs.evolve(options.index, offline=True))
                    return operation.try_run(
                        lock_command(gen_dir, python, offline, check=True), "uv lock --check"
                    )

                reused = resolutions.reuse(request.digest, request.spec, gen_dir, check)
                if reused is not None:
                    return reused
            operation.run(lock_command(gen_dir, python, services.uv_options), "uv lock")
            return resolutions.remember(request.digest, request.spec, gen_dir)
