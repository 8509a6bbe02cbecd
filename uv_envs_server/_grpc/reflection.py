"""Server reflection with grpcio-reflection, for grpcurl and friends.

grpcio-reflection implements ``grpc.reflection.v1alpha``. ``grpc.reflection.v1``
has the same messages under another package name (field for field, the same
bytes on the wire), so the same servicer answers it too: clients that try v1
first (grpcurl does) need no fallback. Files are described from protobuf's
default pool, where the generated modules register themselves on import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

if TYPE_CHECKING:
    from collections.abc import Sequence

#: The reflection services served, the newer first.
REFLECTION_SERVICES: Final[tuple[str, ...]] = (
    "grpc.reflection.v1.ServerReflection",
    reflection.SERVICE_NAME,
)


def reflection_handlers(services: Sequence[str]) -> list[grpc.GenericRpcHandler]:
    """Handlers for both reflection versions, listing ``services`` and v1alpha reflection.

    Only v1alpha is listed: its proto is the one in the pool, so a client
    that lists a service can also describe it.
    """
    servicer = reflection.ReflectionServicer([*services, reflection.SERVICE_NAME])
    method = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    return [
        grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": method})
        for name in REFLECTION_SERVICES
    ]
