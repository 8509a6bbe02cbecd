"""``IEnvironmentProvider`` over gRPC: the remote provider on an :class:`EnvManagerClient`."""

from __future__ import annotations

from uv_envs_server._provider import RemoteEnvironmentProvider

from .client import EnvManagerClient


class GrpcEnvironmentProvider(RemoteEnvironmentProvider):
    """:class:`~uv_envs_server.RemoteEnvironmentProvider` on a gRPC address.

    Args:
        target: ``host:port`` of the server.
        client: use this client instead of opening one on ``target``.
        timeout: deadline in seconds for each call; ``None`` for none.
        root_certificates: PEM certificates to verify a TLS server with.
        tls: use TLS with the system's root certificates.
        token: the server's bearer token, if it requires one.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       One class with :class:`~uv_envs_server.HttpEnvironmentProvider`:
       both are a :class:`~uv_envs_server.RemoteEnvironmentProvider`.

    """

    client: EnvManagerClient

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
        if client is None:
            client = EnvManagerClient(
                target, timeout=timeout, root_certificates=root_certificates, tls=tls, token=token
            )
        super().__init__(client)
