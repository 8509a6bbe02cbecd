"""uv-envs over gRPC: the ``envmanager.EnvManagerService`` server, a client and a provider.

Install with ``pip install 'uv-envs[server]'``. The servicer is a thin
translation layer over :class:`uv_envs.EnvManager`; see ``docs/grpc.md`` for
the contract, status strings and error codes.
"""

from __future__ import annotations

from ._client import EnvManagerClient
from ._errors import RemoteError
from ._provider import GrpcEnvironmentProvider
from ._server import DEFAULT_WORKERS, EnvManagerServer, create_server
from ._servicer import EnvManagerServicer
from ._stdservices import HealthServicer, ReflectionServicer

__all__ = [
    "DEFAULT_WORKERS",
    "EnvManagerClient",
    "EnvManagerServer",
    "EnvManagerServicer",
    "GrpcEnvironmentProvider",
    "HealthServicer",
    "ReflectionServicer",
    "RemoteError",
    "create_server",
]
