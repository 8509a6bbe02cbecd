"""One locked spec: an exported pyproject.toml and uv.lock, and the names derived from it.

Everything a node needs to build an env is in the two files, so every node
installs exactly the same lock (``uv sync --frozen``); nothing is resolved on
the nodes. The spec's digest covers the lock's packages, the Python minor and
the cluster's Ray version, never the order the packages were asked in.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Iterable, Mapping

import attrs

from uv_envs._errors import InvalidInput
from uv_envs._manager import EnvManager
from uv_envs._models import EnvKey
from uv_envs._store.project import declared_spec, locked_versions

#: The runtime-env field (and plugin name): ``runtime_env={"uv_envs": spec.field()}``.
FIELD = "uv_envs"
#: The workflow id of the envs uv_envs.ray builds on the nodes (the node id is the digest).
NODE_WORKFLOW = "uv-envs-ray"
#: The workflow id of the envs that resolve a spec on the driver.
LOCK_WORKFLOW = "uv-envs-ray-lock"


@attrs.frozen
class LockedSpec:
    """An env as its two project files; build it anywhere with ``uv sync --frozen``."""

    pyproject_toml: str
    uv_lock: str

    def __attrs_post_init__(self) -> None:
        # Values come from user dicts (the runtime-env field), so check their type too.
        given: tuple[tuple[str, object], ...] = (
            ("pyproject_toml", self.pyproject_toml),
            ("uv_lock", self.uv_lock),
        )
        for name, text in given:
            if not isinstance(text, str) or not text.strip():
                raise InvalidInput(f"{name} must be a non-empty string")
            try:
                tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise InvalidInput(f"{name} is not TOML: {exc}") from exc
        _ = self.python  # validates requires-python

    @property
    def packages(self) -> tuple[str, ...]:
        """The declared dependencies."""
        return declared_spec(self.pyproject_toml)[0]

    @property
    def python(self) -> str:
        """The Python request (``3.11`` or ``3.11.7``) from ``requires-python``."""
        return declared_spec(self.pyproject_toml)[1]

    @property
    def locked(self) -> dict[str, str]:
        """Package name -> locked version."""
        return locked_versions(tomllib.loads(self.uv_lock))

    def digest(self, ray_version: str) -> str:
        """Content address: the locked packages, the Python minor and the cluster's Ray."""
        document = tomllib.loads(self.uv_lock)
        packages = [
            p
            for p in document.get("package", [])
            if not (isinstance(p.get("source"), dict) and p["source"].get("virtual") == ".")
        ]
        payload = {"packages": packages, "python": self.python, "ray": ray_version}
        encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(encoded.encode()).hexdigest()[:40]

    def uri(self, ray_version: str) -> str:
        """The plugin's URI for this spec on a cluster running ``ray_version``."""
        return f"{FIELD}://{self.digest(ray_version)}"

    def key(self, ray_version: str) -> EnvKey:
        """The key of the env built from this spec on every node."""
        return EnvKey(NODE_WORKFLOW, self.digest(ray_version))

    def field(self) -> dict[str, str]:
        """The value of the ``uv_envs`` runtime-env field."""
        return {"pyproject_toml": self.pyproject_toml, "uv_lock": self.uv_lock}

    @classmethod
    def from_field(cls, value: object) -> LockedSpec:
        """Read a ``uv_envs`` runtime-env field; raises :class:`~uv_envs.InvalidInput`."""
        if not isinstance(value, Mapping):
            raise InvalidInput(
                f"runtime_env['{FIELD}'] must be a dict with pyproject_toml and uv_lock "
                "(use uv_envs.ray.LockedSpec.field())"
            )
        unknown = set(value) - {"pyproject_toml", "uv_lock"}
        if unknown:
            raise InvalidInput(f"runtime_env['{FIELD}'] has unknown keys: {sorted(unknown)}")
        return cls(value.get("pyproject_toml", ""), value.get("uv_lock", ""))

    @classmethod
    def from_key(cls, manager: EnvManager, key: EnvKey) -> LockedSpec:
        """The current generation of an existing env."""
        export = manager.export(key)
        return cls(export.pyproject_toml, export.uv_lock)

    @classmethod
    def resolve(
        cls,
        packages: Iterable[str],
        *,
        python: str | None = None,
        manager: EnvManager | None = None,
        driver_env: bool = False,
    ) -> LockedSpec:
        """Resolve ``packages`` once, here, and return the lock every node will install.

        Only the lock is made here: one ``uv lock`` in a scratch project under
        ``manager``'s root (``EnvManager()`` by default), removed after; no
        venv, no ``import ray`` check (the nodes build and check the env). The
        resolution is stored by spec, so the same packages in any order
        resolve once and give the same lock. With ``driver_env`` the env is
        built here too (an env of ``manager``, keyed by the spec), for a driver
        that will run in it itself; the lock is the same either way.
        """
        manager = manager if manager is not None else EnvManager()
        # Locked as a create would lock it: the same spec hash, stored resolution and project.
        locked = manager.lock_only(
            LOCK_WORKFLOW, packages=packages, python=python, build=driver_env
        )
        return cls(locked.pyproject_toml, locked.uv_lock)
