"""``IEnvironmentProvider`` over gRPC: the remote twin of ``LocalEnvironmentProvider``."""

from __future__ import annotations

import json
from typing import Any

import grpc

import uv_envs

from .client import EnvManagerClient
from .errors import RemoteError


def _environment(metadata_json: str) -> uv_envs.Environment:
    return uv_envs.Environment.from_dict(json.loads(metadata_json))


class GrpcEnvironmentProvider:
    """:class:`uv_envs.IEnvironmentProvider` on a uv-envs server.

    Returns the same dicts and raises the same exceptions as
    :class:`uv_envs.LocalEnvironmentProvider`, so a program can switch between
    the two. Variant ids are mapped to keys in this process's memory.

    Args:
        target: ``host:port`` of the server.
        client: use this client instead of opening one on ``target``.
        timeout: deadline in seconds for each call; ``None`` for none.
        root_certificates: PEM certificates to verify a TLS server with.
        tls: use TLS with the system's root certificates.
        token: the server's bearer token, if it requires one.

    Unlike the local provider, :meth:`get_runtime_env` reads the env's status
    and does not count as a use of the env for idle cleanup.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        client: EnvManagerClient | None = None,
        timeout: float | None = None,
        root_certificates: str | bytes | None = None,
        tls: bool = False,
        token: str | None = None,
    ) -> None:
        self.client = (
            client
            if client is not None
            else EnvManagerClient(
                target,
                timeout=timeout,
                root_certificates=root_certificates,
                tls=tls,
                token=token,
            )
        )
        self._variants = uv_envs.VariantRegistry()

    def close(self) -> None:
        """Close the client's channel."""
        self.client.close()

    def _load(self, key: uv_envs.EnvKey) -> uv_envs.Environment | None:
        status = self.client.get_env_status(key.workflow_id, key.node_id, key.version_id)
        if status.status == uv_envs.EnvStatus.NOT_FOUND or not status.metadata_json:
            return None
        return _environment(status.metadata_json)

    def create_environment(self, variant_id: str, config: dict[str, Any]) -> dict[str, Any]:
        """Create (or return, if it already matches) the env for a variant; safe to retry."""
        key = uv_envs.key_from_config(config)
        self.client.create_env(
            key.workflow_id,
            key.node_id,
            key.version_id,
            packages=config.get("packages") or (),
            requirements_text=config.get("requirements_text"),
            python=config.get("python_version") or None,
        )
        environment = self._load(key)
        if environment is None:
            msg = f"environment {key} was deleted right after its create"
            raise uv_envs.EnvironmentNotFound(msg)
        return self._variants.created(variant_id, environment)

    def get_runtime_env(self, variant_id: str) -> dict[str, Any] | None:
        """Return what a runner needs to use the variant's env; None if unknown or gone."""
        environment = self._ready(variant_id)
        return None if environment is None else environment.runtime_env()

    def _ready(self, variant_id: str) -> uv_envs.Environment | None:
        """The variant's env if it is READY; None if unknown or gone."""
        key = self._variants.get(variant_id)
        if key is None:
            return None
        environment = self._load(key)
        if environment is None:
            return None
        if environment.status is not uv_envs.EnvStatus.READY:
            detail = f": {environment.error}" if environment.error else ""
            msg = f"environment {key} is {environment.status.value}{detail}"
            raise uv_envs.EnvironmentNotReady(msg)
        return environment

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
        try:
            self.client.delete_env(key.workflow_id, key.node_id, key.version_id, timeout=timeout)
        except RemoteError as exc:
            if exc.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                msg = f"environment {key} was not deleted within {timeout} seconds"
                raise uv_envs.EnvironmentBusy(msg) from exc
            raise
