"""Which environment each workflow variant names: the map both providers keep."""

from __future__ import annotations

import threading

from ._models import EnvKey


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

    def get(self, variant_id: str) -> EnvKey | None:
        """The key of ``variant_id``, or None if it is not known."""
        with self._lock:
            return self._keys.get(variant_id)

    def forget(self, variant_id: str) -> EnvKey | None:
        """Drop ``variant_id``; return the key it had, or None if it was not known."""
        with self._lock:
            return self._keys.pop(variant_id, None)
