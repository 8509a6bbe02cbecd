"""uv-envs over gRPC: the ``envmanager.EnvManagerService`` server, a client and a provider.

Install with ``pip install 'uv-envs[server]'``. The servicer is a thin
translation layer over :class:`uv_envs.EnvManager`; see ``docs/grpc.md`` for
the contract, status strings and error codes.
"""

from __future__ import annotations

from ._client import EnvManagerClient
from ._errors import RemoteError
from ._health import HealthServicer
from ._interceptors import REQUEST_ID_KEY
from ._provider import GrpcEnvironmentProvider
from ._security import RemoteAddressNotAllowed
from ._server import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_WORKERS, EnvManagerServer, create_server
from ._servicer import DEFAULT_MAX_PACKAGES, EnvManagerServicer

__all__ = [
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_PACKAGES",
    "DEFAULT_WORKERS",
    "REQUEST_ID_KEY",
    "EnvManagerClient",
    "EnvManagerServer",
    "EnvManagerServicer",
    "GrpcEnvironmentProvider",
    "HealthServicer",
    "RemoteAddressNotAllowed",
    "RemoteError",
    "create_server",
]
