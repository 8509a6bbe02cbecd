"""The channel to an ``envmanager.EnvManagerService`` and its calls, errors translated.

:class:`RpcCalls` is the wire half of :class:`~uv_envs_server.EnvManagerClient`:
it opens the channel, sends one request message of WTB's proto and raises a
failed call as the core exception the server named. The client builds the
requests and answers ``uv_envs`` models; code that wants the messages
themselves uses the generated ``EnvManagerServiceStub``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2

import uv_envs
from uv_envs_server._remote import Closing

from .errors import RemoteError, from_rpc_error
from .health import HEALTH_SERVICE
from .interceptors import AUTHORIZATION_KEY
from .proto import METHODS, method_path, pb
from .server import MAX_MESSAGE_BYTES

_M = TypeVar("_M")


def _open_channel(target: str, root_certificates: str | bytes | None, *, tls: bool) -> grpc.Channel:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if root_certificates is None and not tls:
        return grpc.insecure_channel(target, options=options)
    roots = root_certificates.encode() if isinstance(root_certificates, str) else root_certificates
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), options=options)


def ident(key: uv_envs.EnvKey) -> dict[str, str]:
    """The key fields of a request message: ``pb.CreateEnvRequest(**ident(key), ...)``."""
    return {"workflow_id": key.workflow_id, "node_id": key.node_id, "version_id": key.version_id}


class RpcCalls(Closing):
    """The channel to a server and a call of any of its RPCs; see :class:`EnvManagerClient`."""

    def __init__(  # noqa: PLR0913 - public client: mirrors the RPC request fields
        self,
        target: str = "127.0.0.1:50051",
        *,
        timeout: float | None = None,
        channel: grpc.Channel | None = None,
        wait_for_ready: bool = False,
        root_certificates: str | bytes | None = None,
        tls: bool = False,
        token: str | None = None,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self.wait_for_ready = wait_for_ready
        self._metadata: tuple[tuple[str, str], ...] = (
            ((AUTHORIZATION_KEY, f"Bearer {token}"),) if token is not None else ()
        )
        self._own_channel = channel is None
        self._channel = channel or _open_channel(target, root_certificates, tls=tls)
        self._calls: dict[str, grpc.UnaryUnaryMultiCallable[Any, Any]] = {
            name: self._channel.unary_unary(
                method_path(name),
                request_serializer=request_cls.SerializeToString,
                response_deserializer=response_cls.FromString,
            )
            for name, (request_cls, response_cls) in METHODS.items()
        }
        self._health = self._channel.unary_unary(
            f"/{HEALTH_SERVICE}/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )

    def close(self) -> None:
        """Close the channel (if this client opened it)."""
        if self._own_channel:
            self._channel.close()

    def _call(self, name: str, request: object, timeout: float | None = None) -> Any:  # noqa: ANN401 - each caller names the response type
        return self._call_with_trailers(name, request, timeout)[0]

    def _call_with_trailers(
        self, name: str, request: object, timeout: float | None = None
    ) -> tuple[Any, dict[str, str]]:
        """The response and the call's trailing metadata (text values only)."""
        try:
            response, call = self._calls[name].with_call(
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata,
                wait_for_ready=self.wait_for_ready,
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err
        trailers = {k: v for k, v in call.trailing_metadata() or () if isinstance(v, str)}
        return response, trailers

    def _keyed(
        self, rpc: str, answer: type[_M], key: uv_envs.EnvKey, timeout: float | None = None
    ) -> _M:
        """Call an RPC whose request names one env and nothing else."""
        request = getattr(pb, f"{rpc}Request")(**ident(key))
        response: _M = self._call(rpc, request, timeout)
        if not isinstance(response, answer):  # the method table and the caller disagree
            raise TypeError(f"{rpc} answered {type(response).__name__}, not {answer.__name__}")
        return response

    def health(self, service: str = "", *, timeout: float | None = 10.0) -> str:
        """Return the ``grpc.health.v1`` status name: SERVING, NOT_SERVING, SERVICE_UNKNOWN."""
        try:
            response: Any = self._health(
                health_pb2.HealthCheckRequest(service=service),
                timeout=timeout,
                metadata=self._metadata,
                wait_for_ready=self.wait_for_ready,
            )
        except grpc.RpcError as err:
            if err.code() is grpc.StatusCode.NOT_FOUND:
                return "SERVICE_UNKNOWN"
            raise RemoteError(f"{err.code().name}: {err.details()}", err.code()) from err
        name: str = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return name
