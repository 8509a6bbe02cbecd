"""Dependency changes and syncs: each builds a new generation through the switch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import attrs
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from uv_envs._errors import InvalidRequirement
from uv_envs._events import domain as events
from uv_envs._models import Environment, EnvKey, EnvStatus
from uv_envs._reports import OperationResult
from uv_envs._store.damage import damaged_entry
from uv_envs._store.project import read_declared
from uv_envs._uv.commands import add_command, lock_command, remove_command
from uv_envs._validation import parse_requirement, parse_requirements

from .access import EnvAccess, Locked
from .generations import GenerationPlan, GenerationSwitch
from .operation import Operation
from .repair import Repairs
from .requests import Requirements, parse_requested
from .services import Services

#: Runs uv in the new generation's folder with the env's interpreter.
ChangeStep = Callable[[Path, Operation, str], None]


@attrs.frozen
class DependencyChanges:
    """``add``, ``update``, ``remove`` and ``sync`` of one root."""

    services: Services
    access: EnvAccess
    switch: GenerationSwitch
    #: Finds and repairs damage in a shared venv for every env linking it.
    shared_repairs: Repairs

    def add(
        self, key: EnvKey, packages: Iterable[str], requirements_text: str | bytes | None
    ) -> OperationResult:
        requested = parse_requested(self.services.settings, packages, requirements_text)
        if requested.empty:
            raise InvalidRequirement("add needs at least one package")
        options = self.services.uv_options

        def build(gen_dir: Path, operation: Operation, python: str) -> None:
            requirements_file = None
            if requested.text is not None:
                requirements_file = gen_dir / "requirements.in"
                requirements_file.write_text(requested.text)
            try:
                operation.run(
                    add_command(
                        gen_dir,
                        python,
                        options,
                        requested.packages,
                        requirements_file=requirements_file,
                    ),
                    "uv add",
                )
            finally:
                if requirements_file is not None:
                    requirements_file.unlink(missing_ok=True)

        return self._change(key, "add", build, requested, events.DependenciesAdded)

    def update(self, key: EnvKey, packages: Iterable[str]) -> OperationResult:
        allow_direct = self.services.settings.allow_direct_references
        requirements = parse_requirements(packages, allow_direct_references=allow_direct)
        parsed = [parse_requirement(r, allow_direct_references=allow_direct) for r in requirements]
        bare = [
            r.name
            for r in parsed
            if not r.specifier and not r.url and not r.extras and not r.marker
        ]
        constrained = [r for r in parsed if r.name not in bare]
        options = self.services.uv_options

        def build(gen_dir: Path, operation: Operation, python: str) -> None:
            if not parsed:
                operation.run(
                    lock_command(gen_dir, python, options, upgrade=True), "uv lock --upgrade"
                )
                return
            if bare:
                operation.run(
                    lock_command(gen_dir, python, options, upgrade_packages=bare),
                    "uv lock --upgrade-package",
                )
            if constrained:
                operation.run(
                    add_command(
                        gen_dir,
                        python,
                        options,
                        [str(r) for r in constrained],
                        upgrade_packages=[r.name for r in constrained],
                    ),
                    "uv add --upgrade",
                )

        return self._change(
            key, "update", build, Requirements(requirements), events.DependenciesUpdated
        )

    def remove(self, key: EnvKey, packages: Iterable[str]) -> OperationResult:
        allow_direct = self.services.settings.allow_direct_references
        requirements = parse_requirements(packages, allow_direct_references=allow_direct)
        if not requirements:
            raise InvalidRequirement("remove needs at least one package")
        names = [
            parse_requirement(r, allow_direct_references=allow_direct).name for r in requirements
        ]
        options = self.services.uv_options

        def build(gen_dir: Path, operation: Operation, python: str) -> None:
            operation.run(remove_command(gen_dir, python, options, names), "uv remove")

        return self._change(
            key,
            "remove",
            build,
            Requirements(requirements),
            events.DependenciesRemoved,
            declared=names,
        )

    def sync(self, key: EnvKey) -> OperationResult:
        """Rebuild the venv exactly from the lock, privately, as a new generation.

        When the env links a shared venv other envs link too, that venv is
        checked first (outside this env's lock: the check marks the others);
        a damaged one is rebuilt once, beside it, and every user moves onto it.
        """
        self.shared_repairs.check_entry_of(key)
        with self.access.locked(key) as token:
            environment = self.access.require(token)
            entry = damaged_entry(self.services.layout, environment)
            plan = GenerationPlan(
                "sync",
                spec=environment.spec,
                shared=entry is not None,
                refresh=entry is not None or environment.status is EnvStatus.DAMAGED,
            )
            result = self.switch.next(
                token,
                environment,
                plan,
                lambda _gen_dir, _operation: None,
                failure_event=lambda exc: events.EnvironmentSyncFailed(
                    key, details={"error": str(exc)}
                ),
            )
        if entry is not None:
            self.shared_repairs.repair_users_of(entry, exclude=key)
        self.services.emit(events.EnvironmentSynced(key, details=_details(result)))
        return result

    def adopt(self, key: EnvKey, pyproject_toml: str, uv_lock: str) -> OperationResult:
        """Move the env to exactly this project, a lock made elsewhere, as a new generation.

        What a Ray node does with the lock its server resolved: the files are
        written as given and installed with ``uv sync --frozen``, so nothing is
        resolved here and the env holds exactly that lock.
        """
        with self.access.locked(key) as token:
            result = self.adopt_locked(token, self.access.require(token), pyproject_toml, uv_lock)
        self.services.emit(events.EnvironmentSynced(key, details=_details(result)))
        return result

    def adopt_locked(
        self, token: Locked, environment: Environment, pyproject_toml: str, uv_lock: str
    ) -> OperationResult:
        """:meth:`adopt` under a lock the caller holds; the caller emits ``EnvironmentSynced``."""

        def build(gen_dir: Path, _operation: Operation) -> None:
            (gen_dir / "pyproject.toml").write_text(pyproject_toml)
            (gen_dir / "uv.lock").write_text(uv_lock)

        return self.switch.next(
            token,
            environment,
            GenerationPlan("adopt", copy_project=False),
            build,
            failure_event=lambda exc: events.EnvironmentSyncFailed(
                token.key, details={"error": str(exc), "operation": "adopt"}
            ),
        )

    def _change(
        self,
        key: EnvKey,
        operation: str,
        build: ChangeStep,
        requested: Requirements,
        succeeded: type[events.DomainEvent],
        *,
        declared: Iterable[str] = (),
    ) -> OperationResult:
        """Run one change under the lock; ``declared`` names must be declared already."""
        details = {"packages": list(requested.packages)}
        with self.access.locked(key) as token:
            environment = self.access.require(token)
            self._check_declared(environment, declared)
            python = environment.python_executable
            result = self.switch.next(
                token,
                environment,
                GenerationPlan(operation, details=details, delta=True),
                lambda gen_dir, op: build(gen_dir, op, python),
                failure_event=lambda exc: events.DependencyOperationFailed(
                    key, details={**details, "operation": operation, "error": str(exc)}
                ),
            )
        self.services.emit(
            succeeded(key, details={**details, **_details(result), "changed": result.changed})
        )
        return result

    def _check_declared(self, environment: Environment, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        current = self.services.dirs.current_dir(environment)
        declared = {str(canonicalize_name(Requirement(d).name)) for d in read_declared(current)}
        missing = [n for n in names if str(canonicalize_name(n)) not in declared]
        if missing:
            raise InvalidRequirement(
                f"not declared in environment {environment.key}: {', '.join(missing)}"
            )


def _details(result: OperationResult) -> dict[str, object]:
    """What a finished change's event says about the generation it made."""
    return {"generation": result.environment.generation, "digest": result.environment.digest}
