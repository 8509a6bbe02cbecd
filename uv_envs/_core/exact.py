"""Install exactly a given project (pyproject.toml and uv.lock) under a key: what a Ray node does.

One call under the env's lock: an env already holding that lock is left alone;
a missing one is created from the project's spec with the given lock seeded as
the spec's stored resolution (uv only checks it offline, never resolving
anew); one at another lock (an update made elsewhere, or a node whose index
settings let uv resolve again) moves to exactly the given files with
``uv sync --frozen``. A copy already at the lock is proved before it is handed
out again (:mod:`.handout`); a damaged one is rebuilt from the lock, or the
call fails naming the damage.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from uv_envs._errors import EnvironmentNotReady, UvEnvsError
from uv_envs._events import domain as events
from uv_envs._models import Environment, EnvKey, EnvStatus
from uv_envs._reports import Provisioned, ProvisionOutcome
from uv_envs._store.damage import effective
from uv_envs._store.project import declared_spec

from .access import EnvAccess, Locked
from .dependencies import DependencyChanges
from .handout import HandOutCheck
from .provision import Provisioner
from .requests import Asked
from .services import Services


@attrs.frozen
class ExactInstaller:
    """``EnvManager.install_exact``: one root's env at exactly a lock made elsewhere."""

    services: Services
    access: EnvAccess
    provisioner: Provisioner
    changes: DependencyChanges
    hand_out: HandOutCheck

    def install(self, key: EnvKey, pyproject_toml: str, uv_lock: str) -> Provisioned:
        """The env of ``key`` holding exactly ``uv_lock``; its outcome says what this did.

        ``REUSED``: it held that lock already (nothing changed, its copy checked);
        ``CREATED``: built here; ``REBUILT``: moved to it from another lock or spec,
        or rebuilt from the lock because its copy was damaged. Raises
        :class:`~uv_envs.EnvironmentNotReady` naming the damage when a damaged
        copy cannot be rebuilt.
        """
        services = self.services
        packages, python = declared_spec(pyproject_toml)
        request = self.provisioner.request(Asked(packages, None, python))
        adopted = None
        with self.access.locked(key) as token:
            existing = self.access.current(token)
            damage = self._damage(token, existing, uv_lock)
            if existing is not None and not damage and self._holds(existing, uv_lock):
                # Handed out as an ensure hands out a READY env: audited, touched.
                environment = self.provisioner.reuse(key, existing, replace=True)
                return Provisioned(environment, ProvisionOutcome.REUSED, self._project(environment))
            # Seed the spec's stored resolution with the lock: the build below then copies
            # it and only checks it (uv lock --check --offline), never resolving anew.
            services.resolution_store.put(request.digest, uv_lock.encode())
            try:  # a DAMAGED env is rebuilt by reach
                environment, outcome = self.provisioner.reach(token, request, replace=True)
            except UvEnvsError as exc:
                if not damage:
                    raise
                listed = "; ".join(damage[:5])
                msg = f"the copy of {key} here is damaged ({listed}); rebuilding it failed: {exc}"
                raise EnvironmentNotReady(msg) from exc
            if not self._holds(environment, uv_lock):
                # uv resolved again (another index here), or the spec is the same and the
                # lock another: take the given files as they are.
                adopted = self.changes.adopt_locked(token, environment, pyproject_toml, uv_lock)
                environment, outcome = adopted.environment, ProvisionOutcome.REBUILT
            project = self._project(environment)
        if adopted is not None or damage:
            details: dict[str, object] = {
                "generation": environment.generation,
                "digest": environment.digest,
            }
            if damage:
                details["repaired_damage"] = list(damage[:5])
            services.emit(events.EnvironmentSynced(key, details=details))
        return Provisioned(environment, outcome, project)

    def _damage(self, token: Locked, existing: Environment | None, uv_lock: str) -> tuple[str, ...]:
        """What is wrong with the copy here (known, or found now if it is at ``uv_lock``)."""
        if existing is None:
            return ()
        known = effective(self.services.layout, existing)
        if known.status is EnvStatus.DAMAGED:
            return (known.error or "marked damaged by an earlier check",)
        if not self._holds(existing, uv_lock):
            return ()  # another lock (or no interpreter): moved or built anew below
        return self.hand_out.damage(token, existing)

    def _project(self, environment: Environment) -> str:
        """The current generation's pyproject.toml (its key section is this root's own)."""
        return (self.services.dirs.current_dir(environment) / "pyproject.toml").read_text()

    def _holds(self, environment: Environment, uv_lock: str) -> bool:
        """Whether the env is READY, its interpreter there, its current lock ``uv_lock``."""
        if effective(self.services.layout, environment).status is not EnvStatus.READY:
            return False
        if not Path(environment.python_path).exists():
            return False
        try:
            current = (self.services.dirs.current_dir(environment) / "uv.lock").read_text()
        except OSError:
            return False
        return current == uv_lock
