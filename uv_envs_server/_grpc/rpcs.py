"""One typed method per RPC of ``envmanager.EnvManagerService``, answering its messages.

:class:`RpcCalls` is the wire-level half of
:class:`~uv_envs_server.EnvManagerClient`: the channel, the error translation
and the calls as WTB's proto names them. The client adds the
:class:`~uv_envs_server.RemoteEnvManager` methods, which answer ``uv_envs``
models, on top.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2

import uv_envs
from uv_envs_server._remote import Closing

from .errors import RemoteError, from_rpc_error
from .health import HEALTH_SERVICE
from .interceptors import AUTHORIZATION_KEY
from .proto import METHODS, method_path, pb
from .server import MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    from collections.abc import Iterable

_M = TypeVar("_M")


#: CreateEnv statuses that mean success (what WTB's client accepts too).
CREATE_OK = frozenset({"READY", "CREATED", "OK", "SUCCESS"})


def _open_channel(target: str, root_certificates: str | bytes | None, *, tls: bool) -> grpc.Channel:
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if root_certificates is None and not tls:
        return grpc.insecure_channel(target, options=options)
    roots = root_certificates.encode() if isinstance(root_certificates, str) else root_certificates
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), options=options)


def _requirements(text: str | bytes | None) -> bytes:
    if text is None:
        return b""
    return text.encode("utf-8") if isinstance(text, str) else text


class RpcCalls(Closing):
    """The channel to a server and one method per RPC; see :class:`EnvManagerClient`."""

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

    def _call(self, name: str, request: object, timeout: float | None) -> Any:  # noqa: ANN401 - each caller names the response type
        try:
            return self._calls[name](
                request,
                timeout=self.timeout if timeout is None else timeout,
                metadata=self._metadata,
                wait_for_ready=self.wait_for_ready,
            )
        except grpc.RpcError as err:
            raise from_rpc_error(err) from err

    def _keyed(
        self, rpc: str, answer: type[_M], ident: tuple[str, str, str], timeout: float | None
    ) -> _M:
        """Call an RPC whose request names one env and nothing else."""
        request_type = getattr(pb, f"{rpc}Request")
        workflow_id, node_id, version_id = ident
        request = request_type(workflow_id=workflow_id, node_id=node_id, version_id=version_id)
        response: _M = self._call(rpc, request, timeout)
        if not isinstance(response, answer):  # the method table and the caller disagree
            raise TypeError(f"{rpc} answered {type(response).__name__}, not {answer.__name__}")
        return response

    # -- environments -----------------------------------------------------

    def create_env(  # noqa: PLR0913 - public client: mirrors the RPC request fields
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        requirements_file_name: str = "",
        python: str | None = None,
        timeout: float | None = None,
    ) -> pb.CreateEnvResponse:
        """CreateEnv: make sure the env exists with this spec (safe to retry)."""
        request = pb.CreateEnvRequest(
            workflow_id=workflow_id,
            node_id=node_id,
            version_id=version_id,
            python_version=python or "",
            packages=list(packages),
            requirements_file_content=_requirements(requirements_text),
            requirements_file_name=requirements_file_name,
        )
        response: pb.CreateEnvResponse = self._call("CreateEnv", request, timeout)
        return response

    def ensure_env(  # noqa: PLR0913 - public client: mirrors the RPC request fields
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        python: str | None = None,
        timeout: float | None = None,
    ) -> str:
        """Make sure the env exists with this spec; return its interpreter's path.

        The path is ``<env_path>/.venv/bin/python`` on the server's file system,
        which follows later changes to the env.
        """
        response = self.create_env(
            workflow_id,
            node_id,
            version_id,
            packages=packages,
            requirements_text=requirements_text,
            python=python,
            timeout=timeout,
        )
        if response.status not in CREATE_OK or not response.env_path:
            msg = f"CreateEnv answered status {response.status!r}, env_path {response.env_path!r}"
            raise uv_envs.EnvironmentNotReady(msg)
        return str(PurePosixPath(response.env_path) / ".venv" / "bin" / "python")

    def get_env_status(
        self, workflow_id: str, node_id: str, version_id: str = "", *, timeout: float | None = None
    ) -> pb.EnvStatusResponse:
        """GetEnvStatus: ``status`` is CREATING, READY, FAILED or NOT_FOUND."""
        ident = (workflow_id, node_id, version_id)
        return self._keyed("GetEnvStatus", pb.EnvStatusResponse, ident, timeout)

    def delete_env(
        self, workflow_id: str, node_id: str, version_id: str = "", *, timeout: float | None = None
    ) -> str:
        """DeleteEnv: returns ``"DELETED"``, or ``"NOT_FOUND"`` if it was already gone."""
        ident = (workflow_id, node_id, version_id)
        return self._keyed("DeleteEnv", pb.DeleteEnvResponse, ident, timeout).status

    def export_env(
        self, workflow_id: str, node_id: str, version_id: str = "", *, timeout: float | None = None
    ) -> pb.ExportEnvResponse:
        """ExportEnv: the env's ``pyproject_toml`` and ``uv_lock`` texts."""
        ident = (workflow_id, node_id, version_id)
        return self._keyed("ExportEnv", pb.ExportEnvResponse, ident, timeout)

    # -- dependencies -----------------------------------------------------

    def _deps(
        self,
        rpc: str,
        ident: tuple[str, str, str],
        packages: Iterable[str],
        requirements_text: str | bytes | None,
        timeout: float | None,
    ) -> pb.DepsOperationResponse:
        request = pb.DepsRequest(
            workflow_id=ident[0],
            node_id=ident[1],
            version_id=ident[2],
            packages=list(packages),
            requirements_file_content=_requirements(requirements_text),
        )
        response: pb.DepsOperationResponse = self._call(rpc, request, timeout)
        return response

    def add_deps(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Iterable[str] = (),
        requirements_text: str | bytes | None = None,
        timeout: float | None = None,
    ) -> pb.DepsOperationResponse:
        """AddDeps: ``status`` SUCCESS, or FAILED with uv's stderr (the env unchanged)."""
        ident = (workflow_id, node_id, version_id)
        return self._deps("AddDeps", ident, packages, requirements_text, timeout)

    def update_deps(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Iterable[str] = (),
        timeout: float | None = None,
    ) -> pb.DepsOperationResponse:
        """UpdateDeps: upgrade the named packages, or all when none is named."""
        return self._deps("UpdateDeps", (workflow_id, node_id, version_id), packages, None, timeout)

    def remove_deps(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Iterable[str],
        timeout: float | None = None,
    ) -> pb.DepsOperationResponse:
        """RemoveDeps: drop the named packages."""
        return self._deps("RemoveDeps", (workflow_id, node_id, version_id), packages, None, timeout)

    def sync_env(
        self, workflow_id: str, node_id: str, version_id: str = "", *, timeout: float | None = None
    ) -> pb.SyncEnvResponse:
        """SyncEnv: make the venv match uv.lock again."""
        ident = (workflow_id, node_id, version_id)
        return self._keyed("SyncEnv", pb.SyncEnvResponse, ident, timeout)

    def list_deps(
        self, workflow_id: str, node_id: str, version_id: str = "", *, timeout: float | None = None
    ) -> pb.ListDepsResponse:
        """ListDeps: declared ``dependencies`` and ``locked_versions`` (name -> version)."""
        ident = (workflow_id, node_id, version_id)
        return self._keyed("ListDeps", pb.ListDepsResponse, ident, timeout)

    # -- maintenance and audit --------------------------------------------

    def cleanup(self, idle_hours: int, *, timeout: float | None = None) -> pb.CleanupResponse:
        """Cleanup: delete envs idle for ``idle_hours`` or more (0: every env not in use)."""
        request = pb.CleanupRequest(idle_hours=idle_hours)
        response: pb.CleanupResponse = self._call("Cleanup", request, timeout)
        return response

    def get_operations(
        self,
        workflow_id: str = "",
        node_id: str = "",
        *,
        status: str = "",
        limit: int = 50,
        offset: int = 0,
        timeout: float | None = None,
    ) -> pb.OperationListResponse:
        """GetOperations: a page of the audit trail, newest first."""
        request = pb.GetOperationsRequest(
            workflow_id=workflow_id, node_id=node_id, status=status, limit=limit, offset=offset
        )
        response: pb.OperationListResponse = self._call("GetOperations", request, timeout)
        return response

    def run_code(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        code: str,
        timeout_seconds: int = 0,
        timeout: float | None = None,
    ) -> pb.RunCodeResponse:
        """RunCode: uv-envs answers UNIMPLEMENTED (running node code is Ray's job)."""
        request = pb.RunCodeRequest(
            workflow_id=workflow_id,
            node_id=node_id,
            version_id=version_id,
            code=code,
            timeout=timeout_seconds,
        )
        response: pb.RunCodeResponse = self._call("RunCode", request, timeout)
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
