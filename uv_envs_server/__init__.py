"""uv-envs over gRPC and HTTP: the servers, their clients and providers.

Install with ``pip install 'uv-envs[server]'`` (gRPC), plus ``[http]`` for the
HTTP/JSON API (see ``docs/http.md``). The servicer is a thin
translation layer over :class:`uv_envs.EnvManager`; see ``docs/grpc.md`` for
the contract, status strings and error codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._client import EnvManagerClient
from ._errors import RemoteError
from ._interceptors import REQUEST_ID_KEY
from ._provider import GrpcEnvironmentProvider
from ._security import RemoteAddressNotAllowed
from ._server import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_WORKERS, EnvManagerServer, create_server
from ._servicer import DEFAULT_MAX_PACKAGES, EnvManagerServicer
from ._stdservices import HealthServicer, ReflectionServicer

if TYPE_CHECKING:
    from ._http_client import HttpEnvClient, HttpRemoteError
    from ._http_provider import HttpEnvironmentProvider
    from ._http_server import HttpServer, create_http_server

# The HTTP side needs the [http] extra (FastAPI, uvicorn, httpx): imported on first use,
# so a gRPC-only install of uv_envs_server keeps working.
_HTTP_NAMES = {
    "HttpEnvClient": "._http_client",
    "HttpRemoteError": "._http_client",
    "HttpEnvironmentProvider": "._http_provider",
    "HttpServer": "._http_server",
    "create_http_server": "._http_server",
}


def __getattr__(name: str) -> Any:  # noqa: ANN401 - whatever the HTTP module defines
    module = _HTTP_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib  # noqa: PLC0415 - only for the lazy HTTP names

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


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
    "HttpEnvClient",
    "HttpEnvironmentProvider",
    "HttpRemoteError",
    "HttpServer",
    "ReflectionServicer",
    "RemoteAddressNotAllowed",
    "RemoteError",
    "create_http_server",
    "create_server",
]
