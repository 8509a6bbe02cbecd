"""The environment provider port WTB talks to, and its in-process implementation.

The method shapes are WTB's own, so WTB can swap a local provider for a
remote one (``uv_envs_server.GrpcEnvironmentProvider``) without code changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

from ._errors import EnvironmentNotFound, InvalidInput
from ._manager import EnvManager
from ._models import EnvKey
from ._variants import VariantRegistry


@runtime_checkable
class IEnvironmentProvider(Protocol):
    """Provides an isolated environment per workflow variant."""

    def create_environment(self, variant_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """Create (or return, if it already matches) the env for a variant; safe to retry.

        ``config`` keys: ``workflow_id``, ``node_id``, ``version_id``,
        ``packages`` (PEP 508 strings), ``python_version``. Returns a dict with
        ``type``, ``workflow_id``, ``node_id``, ``version_id``, ``env_path``,
        ``python_path``, ``venv_path``, ``python_version`` and ``status``.
        """
        ...

    def get_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """``env_path``, ``python_path``, ``venv_path``, ``env_vars``, ``py_executable``; or None.

        Pass ``py_executable`` to Ray's ``runtime_env``. A run that must not see
        its site-packages change under it uses ``pinned_python_path`` instead.
        """
        ...

    def cleanup_environment(self, variant_id: str, timeout: float | None = None) -> None:
        """Delete the variant's env; a missing env is not an error."""
        ...


def key_from_config(config: Mapping[str, Any]) -> EnvKey:
    """The :class:`EnvKey` named by a WTB config dict."""
    if not isinstance(config, Mapping):
        raise InvalidInput("config must be a dict")
    return EnvKey(
        config.get("workflow_id", ""),
        config.get("node_id", ""),
        config.get("version_id", "") or "",
    )


class LocalEnvironmentProvider:
    """:class:`IEnvironmentProvider` on an in-process :class:`EnvManager`.

    Variant ids are mapped to keys in memory; ``get_runtime_env`` of a variant
    this provider has not created answers ``None``.
    """

    def __init__(self, manager: EnvManager | None = None) -> None:
        self.manager = manager if manager is not None else EnvManager()
        self._variants = VariantRegistry()

    def create_environment(self, variant_id: str, config: dict[str, Any]) -> dict[str, Any]:
        key = key_from_config(config)
        packages = config.get("packages") or ()
        environment = self.manager.ensure(
            key,
            packages=packages,
            requirements_text=config.get("requirements_text"),
            python=config.get("python_version") or None,
        )
        return self._variants.created(variant_id, environment)

    def get_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        key = self._variants.get(variant_id)
        if key is None:
            return None
        try:
            return self.manager.runtime_env(key)
        except EnvironmentNotFound:
            return None

    def get_ray_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """The variant's env as a Ray ``runtime_env`` (``py_executable``, ``env_vars``); or None.

        Pass it as it is: ``task.options(runtime_env=...)``. Raises
        :class:`~uv_envs.RayPythonMismatch` for an env on another Python minor
        than the cluster's.
        """
        if self.get_runtime_env(variant_id) is None:  # checks READY, counts as a use
            return None
        key = self._variants.get(variant_id)
        if key is None:  # cleaned up meanwhile
            return None
        return self.manager.get(key).ray_runtime_env()

    @contextlib.contextmanager
    def lease(self, variant_id: str) -> Iterator[dict[str, Any]]:
        """Hold the variant's env in use for a run; yields its runtime env.

        While held, cleanup and delete leave the env alone, and the yielded
        ``pinned_python_path`` (also set as ``py_executable``) keeps working
        even if the env moves to a new generation meanwhile::

            with provider.lease("variant-7") as runtime:
                ray_job(runtime_env={"py_executable": runtime["py_executable"]})
        """
        key = self._variants.get(variant_id)
        if key is None:
            raise EnvironmentNotFound(f"no environment for variant {variant_id!r}")
        with self.manager.lease(key) as environment:
            yield environment.runtime_env(pinned=True)

    def cleanup_environment(self, variant_id: str, timeout: float | None = None) -> None:
        key = self._variants.forget(variant_id)
        if key is None:
            return
        self.manager.delete(key, timeout=timeout)
