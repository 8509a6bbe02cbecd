"""The generated messages, and the service's method table in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from uv_envs_server._generated import env_manager_pb2 as pb

if TYPE_CHECKING:
    from google.protobuf.message import Message

SERVICE_NAME: Final = "envmanager.EnvManagerService"

#: RPC name -> (request class, response class), in the order of the proto file.
METHODS: Final[dict[str, tuple[type[Message], type[Message]]]] = {
    "GetEnvStatus": (pb.GetEnvStatusRequest, pb.EnvStatusResponse),
    "CreateEnv": (pb.CreateEnvRequest, pb.CreateEnvResponse),
    "DeleteEnv": (pb.DeleteEnvRequest, pb.DeleteEnvResponse),
    "AddDeps": (pb.DepsRequest, pb.DepsOperationResponse),
    "UpdateDeps": (pb.DepsRequest, pb.DepsOperationResponse),
    "RemoveDeps": (pb.DepsRequest, pb.DepsOperationResponse),
    "ListDeps": (pb.ListDepsRequest, pb.ListDepsResponse),
    "SyncEnv": (pb.SyncEnvRequest, pb.SyncEnvResponse),
    "RunCode": (pb.RunCodeRequest, pb.RunCodeResponse),
    "ExportEnv": (pb.ExportEnvRequest, pb.ExportEnvResponse),
    "Cleanup": (pb.CleanupRequest, pb.CleanupResponse),
    "GetOperations": (pb.GetOperationsRequest, pb.OperationListResponse),
    "DeleteOperations": (pb.DeleteOperationsRequest, pb.DeleteOperationsResponse),
}


def method_path(name: str) -> str:
    """Return the full gRPC path of one RPC, e.g. ``/envmanager.EnvManagerService/CreateEnv``."""
    return f"/{SERVICE_NAME}/{name}"


__all__ = ["METHODS", "SERVICE_NAME", "method_path", "pb"]
