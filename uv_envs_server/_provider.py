"""``IEnvironmentProvider`` on any :class:`RemoteEnvManager`: one provider for both wires.

:class:`~uv_envs_server.GrpcEnvironmentProvider` and
:class:`~uv_envs_server.HttpEnvironmentProvider` are this class with the
client of their wire opened from an address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import uv_envs

from ._remote import Closing

if TYPE_CHECKING:
    from ._remote import RemoteEnvManager


class RemoteEnvironmentProvider(Closing):
    """:class:`uv_envs.IEnvironmentProvider` on a uv-envs server, over either wire.

    Returns the same dicts and raises the same exceptions as
    :class:`uv_envs.LocalEnvironmentProvider`, so a program can switch between
    them. Variant ids are mapped to keys in this process's memory.

    Args:
        client: the server, as an :class:`~uv_envs_server.EnvManagerClient`,
            an :class:`~uv_envs_server.HttpEnvClient` or any other
            :class:`~uv_envs_server.RemoteEnvManager`.

    Unlike the local provider, :meth:`get_runtime_env` reads the env and does
    not count as a use of the env for idle cleanup.

    .. versionadded:: 0.2.0

    """

    def __init__(self, client: RemoteEnvManager) -> None:
        self.client = client
        self._variants = uv_envs.VariantRegistry()

    def close(self) -> None:
        """Close the client's connection."""
        self.client.close()

    def create_environment(self, variant_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """Create (or return, if it already matches) the env for a variant; safe to retry."""
        key = uv_envs.key_from_config(config)
        environment = self.client.ensure(
            key,
            config.get("packages") or (),
            requirements_text=config.get("requirements_text"),
            python=config.get("python_version") or None,
        )
        return self._variants.created(variant_id, environment)

    def _ready(self, variant_id: str) -> uv_envs.Environment | None:
        """The variant's env if it is READY; None if unknown or gone."""
        key = self._variants.get(variant_id)
        if key is None:
            return None
        try:
            environment = self.client.get(key)
        except uv_envs.EnvironmentNotFound:
            return None
        if environment.status is not uv_envs.EnvStatus.READY:
            detail = f": {environment.error}" if environment.error else ""
            msg = f"environment {key} is {environment.status.value}{detail}"
            raise uv_envs.EnvironmentNotReady(msg)
        return environment

    def get_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """Return what a runner needs to use the variant's env; None if unknown or gone."""
        environment = self._ready(variant_id)
        return None if environment is None else environment.runtime_env()

    def get_ray_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """The variant's env as a Ray ``runtime_env`` (``py_executable``, ``env_vars``); or None.

        The server links envs to the Ray it runs with (or ``--ray``), so start
        it from the cluster's Python environment. Raises
        :class:`uv_envs.RayPythonMismatch` for an env on another Python minor.
        """
        environment = self._ready(variant_id)
        return None if environment is None else environment.ray_runtime_env()

    def cleanup_environment(self, variant_id: str, timeout: float | None = None) -> None:
        """Delete the variant's env; a missing env is not an error.

        With ``timeout``, a delete that does not finish in time raises
        :class:`uv_envs.EnvironmentBusy` (the server may still complete it).
        """
        key = self._variants.forget(variant_id)
        if key is None:
            return
        self.client.delete(key, timeout=timeout)
