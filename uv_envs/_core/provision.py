"""Create and ensure: a new env from a spec, or an existing one moved to a new spec.

The spec's project is written and resolved by :mod:`.resolve`; an env already
READY with the spec is seen without its lock by :class:`.ready.ReadyWatch`.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import attrs

from uv_envs._bytecode.compiler import CompileJob, cost_notes
from uv_envs._errors import EnvironmentAlreadyExists
from uv_envs._events import domain as events
from uv_envs._events.records import Phase
from uv_envs._models import Environment, EnvKey, EnvStatus
from uv_envs._reports import Export, Provisioned, ProvisionOutcome
from uv_envs._store.damage import effective

from .access import USABLE, EnvAccess, Locked
from .generations import GenerationPlan, GenerationSwitch
from .install import Installer
from .operation import Operation, audited
from .ready import ReadyWatch
from .requests import Asked, ProvisionRequest, conflict, request_for
from .resolve import lock_only, write_spec_project
from .services import Services


@attrs.frozen
class Provisioner:
    """Builds envs from specs."""

    services: Services
    access: EnvAccess
    installer: Installer
    switch: GenerationSwitch

    def request(self, asked: Asked) -> ProvisionRequest:
        """What create, ensure or provision were asked, validated, its interpreter found."""
        return request_for(self.services.settings, self.services.python_finder, asked)

    def provide(self, key: EnvKey, asked: Asked, *, replace: bool) -> Environment:
        """The env of ``key`` for the request (see ``EnvManager.create`` and ``ensure``).

        An env already READY with the spec is handed out under the shared side
        of its lock, so the callers waiting out one install (N tasks on a node
        needing one new env) stop polling for the lock once the install
        commits and are handed the env together, not one after another.
        """
        request = self.request(asked)
        ready = ReadyWatch(self.services, key, request.digest)
        if ready.found is None:
            with self.access.locked_unless(key, ready) as token:
                if token is not None:
                    environment, _ = self.reach(token, request, replace=replace)
                    return environment
        # Seen READY: hand it out under the shared side of its lock, beside the other
        # readers, after any holder (the install's tail, a delete) let go; read again
        # there, since a delete or a change may have come between.
        with self.access.shared(key) as shared:
            found = ready.read() if shared else None
            if found is not None:
                return self.reuse(key, found, replace=replace)
        with self.access.locked(key) as token:
            environment, _ = self.reach(token, request, replace=replace)
            return environment

    def provision(self, key: EnvKey, asked: Asked, *, replace: bool) -> Provisioned:
        """As :meth:`provide`, and say what it did and read the project, all under one lock.

        An env READY with the spec is reused under the shared side of its lock, as
        :meth:`provide` does: the retry of a create is a read (no recovery pass, which
        lists the env's folder, and no wait behind other readers).
        """
        request = self.request(asked)
        ready = ReadyWatch(self.services, key, request.digest)
        if ready.found is not None:
            with self.access.shared(key) as shared:
                found = ready.read() if shared else None
                if found is not None:
                    environment = self.reuse(key, found, replace=replace)
                    gen_dir = self.services.dirs.current_dir(environment)
                    pyproject = (gen_dir / "pyproject.toml").read_text()
                    return Provisioned(environment, ProvisionOutcome.REUSED, pyproject)
        with self.access.locked(key) as token:
            environment, outcome = self.reach(token, request, replace=replace)
            gen_dir = self.services.dirs.current_dir(environment)
            pyproject = (gen_dir / "pyproject.toml").read_text()
            return Provisioned(environment, outcome, pyproject)

    def lock_only(self, workflow_id: str, asked: Asked, *, build: bool) -> Export:
        """The spec's project files, resolved as a create would, filed under its spec hash.

        The key is ``(workflow_id, <spec hash>[:40])``, so the same packages in any
        order share it. Without ``build`` no venv is made (see
        :func:`.resolve.lock_only`); with it the env of that key is ensured and its
        files read back, for a caller that will run in it too.
        """
        request = self.request(asked)
        key = EnvKey(workflow_id, request.digest[:40])
        if build:
            gen_dir = self.services.dirs.current_dir(self.provide(key, asked, replace=True))
            project, lock = (gen_dir / name for name in ("pyproject.toml", "uv.lock"))
            return Export(key, project.read_text(), lock.read_text())
        pyproject_toml, uv_lock = lock_only(self.services, key, request)
        return Export(key, pyproject_toml, uv_lock)

    def reach(
        self, token: Locked, request: ProvisionRequest, *, replace: bool
    ) -> tuple[Environment, ProvisionOutcome]:
        """The env of the locked key for the request: built, reused or rebuilt, and which."""
        key = token.key
        existing = self.access.current(token)
        if existing is None:
            return self._build_new(token, request), ProvisionOutcome.CREATED
        if existing.status is EnvStatus.DELETING:
            # Withdrawn while in use: a fresh generation; the one in use is retired and
            # kept until its users exit (cleanup prunes it), so no process breaks.
            fresh = self._respec(token, existing, request)
            self.services.layout.pending_delete(key).unlink(missing_ok=True)
            return fresh, ProvisionOutcome.CREATED
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
            return self.reuse(key, existing, replace=replace), ProvisionOutcome.REUSED
        if not replace:
            headline, differences = conflict(key, existing.spec, request.spec)
            raise EnvironmentAlreadyExists(
                f"{headline}; ensure moves it to the new spec, or delete it first",
                key=key,
                differences=differences,
                headline=headline,
            )
        return self._respec(token, existing, request), ProvisionOutcome.REBUILT

    def reuse(self, key: EnvKey, existing: Environment, *, replace: bool) -> Environment:
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
            events.EnvironmentCreated(
                key,
                details={
                    "python_version": environment.python_version,
                    "digest": environment.digest,
                },
            )
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
        packages = write_spec_project(self.services, gen_dir, environment.key, request, operation)
        installed = self.installer.install(
            gen_dir, request.interpreter, operation, packages=packages
        )
        digest = self.installer.digest(gen_dir)
        operation.note(installed=installed, digest=digest)
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
            digest=digest,
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
            lambda gen_dir, operation: write_spec_project(
                self.services, gen_dir, key, request, operation
            ),
            failure_event=lambda exc: events.EnvironmentCreationFailed(
                key, details={"error": str(exc)}
            ),
        )
        self.services.emit(
            events.EnvironmentCreated(
                key,
                details={
                    "generation": result.environment.generation,
                    "digest": result.environment.digest,
                },
            )
        )
        self.services.dirs.touch(result.environment)
        return result.environment

    def note_cost(self, gen_dir: Path, operation: Operation) -> CompileJob | None:
        """Note the uv runs and the bytecode of ``gen_dir``'s venv; the compile to start after."""
        state, job = self.services.bytecode.plan(gen_dir)
        operation.note(**cost_notes(len(operation.results), state))
        return job
