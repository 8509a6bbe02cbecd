"""The generation switch: build generation N+1 beside the live one, commit, point at it.

1. ``metadata.json`` names N+1 as pending (so recovery can find it).
2. ``gens/N+1`` is built at its final path (venvs cannot be moved).
3. On failure ``gens/N+1`` is removed and the old record written back: the env
   is byte for byte what it was.
4. The commit point: ``metadata.json`` naming N+1 as the generation.
5. ``current`` is switched to ``gens/N+1`` with one rename.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from uv_envs._bytecode.compiler import cost_notes
from uv_envs._errors import StorageError
from uv_envs._events.records import Phase
from uv_envs._models import Environment, EnvSpec, EnvStatus, RetiredGeneration
from uv_envs._reports import OperationResult
from uv_envs._store.project import read_declared, spec_hash
from uv_envs._uv.python import Interpreter

from .access import Locked
from .install import Installer
from .operation import FailureEvent, Operation, audited
from .services import Services

_PROJECT_FILES = ("pyproject.toml", "uv.lock")

#: Fills the new generation's folder with its project (the lock included); returns
#: the lock's packages digest when it knows it (so the installer need not parse the lock).
BuildStep = Callable[[Path, Operation], str | None]


@attrs.frozen
class GenerationPlan:
    """What the next generation is built from, and how it is installed.

    Args:
        operation: the audit name (``add``, ``sync``, ``ensure``, ...).
        details: the audit row's starting metadata.
        copy_project: start from the current generation's pyproject and lock.
        spec: the spec the env has afterwards; read from the new pyproject if None.
        interpreter: build with this one instead of the env's.
        shared: link the venv from the store (False: a private venv, built afresh).
        refresh: have uv fetch and unpack every package again.
        delta: the new lock is the current one with a dependency change (add,
            update, remove), so facts checked of the current venv carry over
            where the change cannot alter them (the Ray check, ``_uv.raylink``);
            and a READY env whose project files the change left byte for byte
            as they were keeps its generation (nothing to install, nothing new).

    """

    operation: str
    details: Mapping[str, Any] = attrs.field(factory=dict)
    copy_project: bool = True
    spec: EnvSpec | None = None
    interpreter: Interpreter | None = None
    shared: bool = True
    refresh: bool = False
    delta: bool = False


@attrs.frozen
class GenerationSwitch:
    """Moves a locked env to a new generation (see the module docstring)."""

    services: Services
    installer: Installer

    def next(
        self,
        token: Locked,
        environment: Environment,
        plan: GenerationPlan,
        build: BuildStep,
        *,
        failure_event: FailureEvent | None = None,
    ) -> OperationResult:
        """Build, commit and switch to generation N+1; return the committed result."""
        services, env_dir = self.services, environment.env_path
        number = max([environment.generation, *services.dirs.generation_numbers(env_dir)]) + 1
        with audited(
            services, token.key, plan.operation, plan.details, failure_event=failure_event
        ) as operation:
            services.metadata.save(attrs.evolve(environment, pending_generation=number))
            try:
                committed = self._build(environment, plan, build, number, operation)
            except BaseException:
                services.dirs.remove_generation(env_dir, number)
                # Writing the old record back matters less than the error that got here.
                with contextlib.suppress(Exception):
                    services.metadata.save(environment)
                raise
            if committed is None:  # the change changed nothing: the env stays as it was
                services.dirs.remove_generation(env_dir, number)
                services.metadata.save(environment)
                operation.note(generation=environment.generation, changed=False)
                return operation.result(environment, changed=False)
            services.progress(Phase.LINKING)
            # The commit point: from here the new generation is the env, even after a crash.
            services.metadata.save(committed)
            services.dirs.point_current(env_dir, number)
            operation.note(generation=number, spec_hash=committed.spec_hash)
            state, job = services.bytecode.plan(services.layout.generation_dir(env_dir, number))
            operation.note(**cost_notes(len(operation.results), state))
        services.bytecode.start(job)  # after the audit row: the operation is done
        return operation.result(committed)

    def _build(
        self,
        environment: Environment,
        plan: GenerationPlan,
        build: BuildStep,
        number: int,
        operation: Operation,
    ) -> Environment | None:
        """The committed record of generation ``number``; None if a delta changed nothing."""
        gen_dir = self.services.layout.generation_dir(environment.env_path, number)
        gen_dir.mkdir(parents=True)
        current = self.services.layout.generation_dir(environment.env_path, environment.generation)
        if plan.copy_project:
            for name in _PROJECT_FILES:
                try:
                    shutil.copy2(current / name, gen_dir / name)
                except FileNotFoundError as exc:
                    # Lost from outside (verify marks the env DAMAGED for it): nothing to
                    # build from, but the spec is recorded, so a respec can start afresh.
                    raise StorageError(
                        f"environment {environment.key}: generation {environment.generation} "
                        f"has lost its {name}; ensure the env with its spec to rebuild it "
                        "from a new lock, or delete it"
                    ) from exc
        packages = build(gen_dir, operation)
        if plan.delta and environment.status is EnvStatus.READY and _same_project(current, gen_dir):
            return None
        interpreter = plan.interpreter or Interpreter(
            Path(environment.python_executable), environment.python_version
        )
        installed = self.installer.install(
            gen_dir,
            interpreter,
            operation,
            shared=plan.shared,
            refresh=plan.refresh,
            packages=packages,
            base=current / ".venv"
            if plan.delta and environment.status is EnvStatus.READY
            else None,
        )
        digest = self.installer.digest(gen_dir)
        operation.note(installed=installed, digest=digest)
        spec = plan.spec or EnvSpec(packages=read_declared(gen_dir), python=environment.spec.python)
        now = time.time()
        return attrs.evolve(
            environment,
            spec=spec,
            spec_hash=spec_hash(spec, self.services.settings.index),
            python_version=interpreter.version,
            python_executable=str(interpreter.path),
            ray=self.services.ray_link.describe(interpreter),
            generation=number,
            pending_generation=None,
            status=EnvStatus.READY,
            error=None,
            retired=(*environment.retired, RetiredGeneration(environment.generation, now)),
            updated_at=now,
            digest=digest,
        )


def _same_project(current: Path, new: Path) -> bool:
    """Whether ``new`` holds the project files of ``current`` byte for byte."""
    try:
        return all((current / n).read_bytes() == (new / n).read_bytes() for n in _PROJECT_FILES)
    except OSError:  # a file missing on either side: not the same, build as before
        return False
