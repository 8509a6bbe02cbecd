"""uv-envs over gRPC and HTTP: the servers, their clients and providers.

Install with ``pip install 'uv-envs[server]'`` (gRPC), plus ``[http]`` for the
HTTP/JSON API (see ``docs/http.md``). Both clients implement one contract,
:class:`RemoteEnvManager`, and :class:`RemoteEnvironmentProvider` runs on
either. The servicer is a thin
translation layer over :class:`uv_envs.EnvManager`; see ``docs/grpc.md`` for
the contract, status strings and error codes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from uv_envs_server._grpc.client import EnvManagerClient
from uv_envs_server._grpc.errors import RemoteError
from uv_envs_server._grpc.health import HealthServicer
from uv_envs_server._grpc.interceptors import REQUEST_ID_KEY
from uv_envs_server._grpc.provider import GrpcEnvironmentProvider
from uv_envs_server._grpc.server import EnvManagerServer, create_server
from uv_envs_server._grpc.servicer import EnvManagerServicer

from ._limits import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PACKAGES, DEFAULT_WORKERS
from ._options import ServeOptions
from ._provider import RemoteEnvironmentProvider
from ._remote import RemoteEnvManager
from ._security import RemoteAddressNotAllowed, TlsFiles

if TYPE_CHECKING:
    from uv_envs_server._http.client import HttpEnvClient, HttpRemoteError
    from uv_envs_server._http.provider import HttpEnvironmentProvider
    from uv_envs_server._http.server import HttpServer, create_http_server

# The HTTP side needs the [http] extra (FastAPI, uvicorn, httpx): imported on first use,
# so a gRPC-only install of uv_envs_server keeps working.
_HTTP_NAMES = {
    "HttpEnvClient": "._http.client",
    "HttpRemoteError": "._http.client",
    "HttpEnvironmentProvider": "._http.provider",
    "HttpServer": "._http.server",
    "create_http_server": "._http.server",
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
    "RemoteAddressNotAllowed",
    "RemoteEnvManager",
    "RemoteEnvironmentProvider",
    "RemoteError",
    "ServeOptions",
    "TlsFiles",
    "create_http_server",
    "create_server",
]
