"""The generated messages, and the service's method table, read from the proto itself."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from uv_envs_server._generated import env_manager_pb2 as pb

if TYPE_CHECKING:
    from google.protobuf.message import Message

_SERVICE: Final = pb.DESCRIPTOR.services_by_name["EnvManagerService"]

SERVICE_NAME: Final = _SERVICE.full_name

#: RPC name -> (request class, response class), in the order of the proto file. Read
#: from the compiled descriptor, so the table cannot disagree with protos/env_manager.proto.
METHODS: Final[dict[str, tuple[type[Message], type[Message]]]] = {
    method.name: (getattr(pb, method.input_type.name), getattr(pb, method.output_type.name))
    for method in _SERVICE.methods
}


def method_path(name: str) -> str:
    """Return the full gRPC path of one RPC, e.g. ``/envmanager.EnvManagerService/CreateEnv``."""
    return f"/{SERVICE_NAME}/{name}"


__all__ = ["METHODS", "SERVICE_NAME", "method_path", "pb"]
