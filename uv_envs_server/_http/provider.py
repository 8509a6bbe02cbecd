"""``IEnvironmentProvider`` over HTTP: the remote provider on an :class:`HttpEnvClient`."""

from __future__ import annotations

from uv_envs_server._provider import RemoteEnvironmentProvider

from .client import DEFAULT_TIMEOUT, HttpEnvClient


class HttpEnvironmentProvider(RemoteEnvironmentProvider):
    """:class:`~uv_envs_server.RemoteEnvironmentProvider` on an HTTP address.

    Args:
        base_url: the server, for example ``http://127.0.0.1:8080``.
        client: use this client instead of opening one on ``base_url``.
        token: the server's bearer token, if it requires one.
        timeout: seconds per call (``None`` for none).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       One class with :class:`~uv_envs_server.GrpcEnvironmentProvider`; it
       gained :meth:`get_ray_runtime_env`.

    """

    client: HttpEnvClient

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        client: HttpEnvClient | None = None,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        if client is None:
            client = HttpEnvClient(base_url, token=token, timeout=timeout)
        super().__init__(client)
