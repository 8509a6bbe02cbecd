"""Standard gRPC services without extra dependencies: health checking and reflection.

Their proto files are vendored under ``protos/grpc/`` and shipped as
serialized descriptors (``_generated/vendored_descriptors.py``). They are
loaded into a private descriptor pool, so this module never clashes with
grpcio-health-checking or grpcio-reflection loaded in the same process.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final, Protocol

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from ._generated import vendored_descriptors
from ._proto import SERVICE_NAME, pb

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

    from google.protobuf.message import Message

HEALTH_SERVICE: Final = "grpc.health.v1.Health"
REFLECTION_PACKAGES: Final = ("grpc.reflection.v1", "grpc.reflection.v1alpha")

_POOL = descriptor_pool.DescriptorPool()
_FILES: dict[str, bytes] = {}
for _data in (
    vendored_descriptors.HEALTH_V1,
    vendored_descriptors.REFLECTION_V1,
    vendored_descriptors.REFLECTION_V1ALPHA,
):
    _FILES[_POOL.AddSerializedFile(_data).name] = _data
_FILES[pb.DESCRIPTOR.name] = pb.DESCRIPTOR.serialized_pb


class _HealthRequest(Protocol):
    @property
    def service(self) -> str: ...


def message_class(full_name: str) -> type[Message]:
    """Return the message class of ``full_name`` in the private pool."""
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(full_name))


_HealthCheckRequest = message_class("grpc.health.v1.HealthCheckRequest")
_HealthCheckResponse = message_class("grpc.health.v1.HealthCheckResponse")

UNKNOWN: Final = 0
SERVING: Final = 1
NOT_SERVING: Final = 2
SERVICE_UNKNOWN: Final = 3


class HealthServicer:
    """``grpc.health.v1.Health``: Check and Watch.

    The overall server (``""``) and ``envmanager.EnvManagerService`` are
    SERVING from the start; :meth:`shutdown` turns them NOT_SERVING and ends
    every Watch stream, so load balancers drain before the server stops.

    Args:
        services: the service names reported SERVING.
        max_watchers: Watch streams served at once. Each holds a worker thread
            of the server for as long as it is open, so they are capped to
            leave workers for the real work; one more answers RESOURCE_EXHAUSTED.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self, services: Iterable[str] = ("", SERVICE_NAME), *, max_watchers: int = 4
    ) -> None:
        self._changed = threading.Condition()
        self._statuses = dict.fromkeys(services, SERVING)
        self._shutdown = False
        self._watchers = threading.BoundedSemaphore(max_watchers)

    def set(self, service: str, status: int) -> None:
        """Set one service's status and wake its watchers."""
        with self._changed:
            self._statuses[service] = status
            self._changed.notify_all()

    def shutdown(self) -> None:
        """Report every service NOT_SERVING, then end all Watch streams."""
        with self._changed:
            self._statuses = dict.fromkeys(self._statuses, NOT_SERVING)
            self._shutdown = True
            self._changed.notify_all()

    def Check(self, request: _HealthRequest, context: grpc.ServicerContext) -> Message:
        """Return the status of one service; an unknown service is NOT_FOUND."""
        with self._changed:
            status = self._statuses.get(request.service)
        if status is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return _HealthCheckResponse(status=status)

    def Watch(self, request: _HealthRequest, context: grpc.ServicerContext) -> Iterator[Message]:
        """Stream the status of one service each time it changes."""
        if not self._watchers.acquire(blocking=False):
            context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "too many health Watch streams; use Check"
            )
        try:
            last = None
            while context.is_active():
                with self._changed:
                    current = self._statuses.get(request.service, SERVICE_UNKNOWN)
                    if current == last:
                        if self._shutdown:
                            return
                        self._changed.wait(timeout=1.0)
                        continue
                last = current
                yield _HealthCheckResponse(status=current)
        finally:
            self._watchers.release()

    def handler(self) -> grpc.GenericRpcHandler:
        """Return the generic handler serving this servicer."""
        return grpc.method_handlers_generic_handler(
            HEALTH_SERVICE,
            {
                "Check": grpc.unary_unary_rpc_method_handler(
                    self.Check,
                    request_deserializer=_HealthCheckRequest.FromString,
                    response_serializer=_HealthCheckResponse.SerializeToString,
                ),
                "Watch": grpc.unary_stream_rpc_method_handler(
                    self.Watch,
                    request_deserializer=_HealthCheckRequest.FromString,
                    response_serializer=_HealthCheckResponse.SerializeToString,
                ),
            },
        )


def _symbols(data: bytes) -> Iterator[str]:
    # Every fully qualified name a file defines: messages, enums, services, methods.
    proto = descriptor_pb2.FileDescriptorProto.FromString(data)
    prefix = f"{proto.package}." if proto.package else ""

    def messages(scope: str, items: Iterable[descriptor_pb2.DescriptorProto]) -> Iterator[str]:
        for item in items:
            name = f"{scope}{item.name}"
            yield name
            yield from (f"{name}.{enum.name}" for enum in item.enum_type)
            yield from messages(f"{name}.", item.nested_type)

    yield from messages(prefix, proto.message_type)
    yield from (f"{prefix}{enum.name}" for enum in proto.enum_type)
    for service in proto.service:
        yield f"{prefix}{service.name}"
        yield from (f"{prefix}{service.name}.{method.name}" for method in service.method)


class ReflectionServicer:
    """``grpc.reflection.v1`` or ``v1alpha`` ``ServerReflection``, for grpcurl and friends.

    Args:
        package: ``grpc.reflection.v1`` or ``grpc.reflection.v1alpha``.
        services: the service names to list.
        files: file name -> serialized FileDescriptorProto, for every file served.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self, package: str, services: Sequence[str], files: Mapping[str, bytes] = _FILES
    ) -> None:
        self.package = package
        self._request = message_class(f"{package}.ServerReflectionRequest")
        self._response = message_class(f"{package}.ServerReflectionResponse")
        self._services = tuple(sorted(services))
        self._files = dict(files)
        self._by_symbol = {
            symbol: name for name, data in self._files.items() for symbol in _symbols(data)
        }

    def ServerReflectionInfo(
        self, request_iterator: Iterable[Message], context: grpc.ServicerContext
    ) -> Iterator[Message]:
        """Answer each request of the stream in turn."""
        del context
        for request in request_iterator:
            yield self.answer(request)

    def answer(self, request: Message) -> Message:
        """Return the response to one reflection request."""
        fields: Any = request  # a message of the private pool: no static field types
        response: Any = self._response(valid_host=fields.host, original_request=request)
        kind = request.WhichOneof("message_request")
        if kind == "list_services":
            for name in self._services:
                response.list_services_response.service.add(name=name)
        elif kind == "file_by_filename" and fields.file_by_filename in self._files:
            data = self._files[fields.file_by_filename]
            response.file_descriptor_response.file_descriptor_proto.append(data)
        elif kind == "file_containing_symbol" and fields.file_containing_symbol in self._by_symbol:
            data = self._files[self._by_symbol[fields.file_containing_symbol]]
            response.file_descriptor_response.file_descriptor_proto.append(data)
        elif (
            kind == "all_extension_numbers_of_type"
            and fields.all_extension_numbers_of_type in self._by_symbol
        ):
            # None of our messages is extensible: a known type has no extensions.
            response.all_extension_numbers_response.base_type_name = (
                fields.all_extension_numbers_of_type
            )
        else:
            what = getattr(fields, kind) if kind else "an empty request"
            response.error_response.error_code = grpc.StatusCode.NOT_FOUND.value[0]
            response.error_response.error_message = f"not found: {what}"
        answered: Message = response
        return answered

    def handler(self) -> grpc.GenericRpcHandler:
        """Return the generic handler serving this servicer."""
        return grpc.method_handlers_generic_handler(
            f"{self.package}.ServerReflection",
            {
                "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                    self.ServerReflectionInfo,
                    request_deserializer=self._request.FromString,
                    response_serializer=self._response.SerializeToString,
                )
            },
        )


def reflection_handlers(services: Sequence[str]) -> list[grpc.GenericRpcHandler]:
    """Handlers for both reflection versions, listing ``services`` and themselves."""
    listed = [*services, *(f"{package}.ServerReflection" for package in REFLECTION_PACKAGES)]
    return [ReflectionServicer(package, listed).handler() for package in REFLECTION_PACKAGES]
