"""Which environment each workflow variant names, and what create_environment answers for it.

Both providers (the local one and ``uv_envs_server.GrpcEnvironmentProvider``) use this.
"""

from __future__ import annotations

import threading
from typing import Any

from ._models import Environment, EnvKey


def environment_dict(environment: Environment) -> dict[str, Any]:
    """The dict shape both providers return from ``create_environment``."""
    key = environment.key
    return {
        "type": "uv",
        "workflow_id": key.workflow_id,
        "node_id": key.node_id,
        "version_id": key.version_id,
        "env_path": str(environment.env_path),
        "python_path": str(environment.python_path),
        "venv_path": str(environment.venv_path),
        "pinned_python_path": str(environment.pinned_python_path),
        "python_version": environment.python_version,
        "status": environment.status.value,
        "spec_hash": environment.spec_hash,
    }


class VariantRegistry:
    """A thread-safe, in-memory map from WTB variant ids to :class:`EnvKey`.

    :class:`LocalEnvironmentProvider` and ``uv_envs_server.GrpcEnvironmentProvider``
    remember each variant's key here when its env is created, look it up for
    runs and forget it on cleanup. Nothing is persisted: a new provider
    knows no variants.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self._keys: dict[str, EnvKey] = {}
        self._lock = threading.Lock()

    def remember(self, variant_id: str, key: EnvKey) -> None:
        """Map ``variant_id`` to ``key``, replacing any key it had."""
        with self._lock:
            self._keys[variant_id] = key

    def created(self, variant_id: str, environment: Environment) -> dict[str, Any]:
        """Remember the env made for ``variant_id``; return what ``create_environment`` answers.

        That is the dict of :class:`IEnvironmentProvider.create_environment`
        (``type``, the key's ids, the paths, ``python_version``, ``status``, ...)
        with ``variant_id`` added.
        """
        self.remember(variant_id, environment.key)
        return {**environment_dict(environment), "variant_id": variant_id}

    def get(self, variant_id: str) -> EnvKey | None:
        """The key of ``variant_id``, or None if it is not known."""
        with self._lock:
            return self._keys.get(variant_id)

    def forget(self, variant_id: str) -> EnvKey | None:
        """Drop ``variant_id``; return the key it had, or None if it was not known."""
        with self._lock:
            return self._keys.pop(variant_id, None)
