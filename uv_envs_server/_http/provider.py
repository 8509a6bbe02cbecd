"""``IEnvironmentProvider`` over HTTP: the twin of the local and gRPC providers."""

from __future__ import annotations

from typing import Any

import httpx

import uv_envs

from .client import HttpEnvClient


def _environment_dict(env: dict[str, Any]) -> dict[str, Any]:
    # The same keys as uv_envs.environment_dict, read from the API's env JSON.
    fields = ("workflow_id", "node_id", "version_id", "env_path", "python_path", "venv_path")
    more = ("pinned_python_path", "python_version", "status", "spec_hash")
    return {"type": "uv", **{name: env[name] for name in (*fields, *more)}}


class HttpEnvironmentProvider:
    """:class:`uv_envs.IEnvironmentProvider` on a uv-envs HTTP server.

    Returns the same dicts and raises the same exceptions as
    :class:`uv_envs.LocalEnvironmentProvider`. Variant ids are mapped to keys
    in this process's memory.

    Args:
        base_url: the server, for example ``http://127.0.0.1:8080``.
        client: use this client instead of opening one on ``base_url``.
        token: the server's bearer token, if it requires one.
        timeout: seconds per call (``None`` for none).

    Like the gRPC provider, :meth:`get_runtime_env` reads the env's status
    and does not count as a use of the env for idle cleanup.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        client: HttpEnvClient | None = None,
        token: str | None = None,
        timeout: float | None = 600.0,
    ) -> None:
        self.client = (
            client if client is not None else HttpEnvClient(base_url, token=token, timeout=timeout)
        )
        self._variants = uv_envs.VariantRegistry()

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def create_environment(self, variant_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """Create (or return, if it already matches) the env for a variant; safe to retry."""
        key = uv_envs.key_from_config(config)
        env = self.client.ensure(
            key.workflow_id,
            key.node_id,
            key.version_id,
            packages=config.get("packages") or (),
            python_version=config.get("python_version") or None,
            requirements_text=config.get("requirements_text"),
        )
        self._variants.remember(variant_id, key)
        return {**_environment_dict(env), "variant_id": variant_id}

    def get_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """Return what a runner needs to use the variant's env; None if unknown or gone."""
        key = self._variants.get(variant_id)
        if key is None:
            return None
        try:
            status = self.client.get_env(key.workflow_id, key.node_id, key.version_id)
        except uv_envs.EnvironmentNotFound:
            return None
        env = status["environment"]
        if env["status"] != uv_envs.EnvStatus.READY.value:
            detail = f": {env['error']}" if env.get("error") else ""
            msg = f"environment {key} is {env['status']}{detail}"
            raise uv_envs.EnvironmentNotReady(msg)
        runtime: dict[str, Any] = env["runtime_env"]
        return runtime

    def cleanup_environment(self, variant_id: str, timeout: float | None = None) -> None:
        """Delete the variant's env; a missing env is not an error.

        With ``timeout``, a delete that does not answer in time raises
        :class:`uv_envs.EnvironmentBusy` (the server may still complete it).
        """
        key = self._variants.forget(variant_id)
        if key is None:
            return
        try:
            self.client.delete_env(
                key.workflow_id,
                key.node_id,
                key.version_id,
                timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout,
            )
        except httpx.TimeoutException as exc:
            msg = f"environment {key} was not deleted within {timeout} seconds"
            raise uv_envs.EnvironmentBusy(msg) from exc
