"""Health checking and reflection against the official grpcio clients.

The server serves grpcio-health-checking's and grpcio-reflection's servicers
(dependencies of the server extra); these tests show that the standard
tooling understands the answers, as grpcurl and load balancers would.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from uv_envs_server import EnvManagerServer


def test_official_health_client(channel: grpc.Channel) -> None:
    stub: Any = health_pb2_grpc.HealthStub(channel)  # the stubs' types omit the methods
    for service in ("", "envmanager.EnvManagerService"):
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=10)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_official_health_watch_sees_the_drain(
    small_server: tuple[EnvManagerServer, grpc.Channel],
) -> None:
    server, channel = small_server
    stub: Any = health_pb2_grpc.HealthStub(channel)  # typed without its methods
    stream = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
    stopped = server.stop(30)
    assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
    # The drain ends the stream cleanly instead of holding stop() for the grace period.
    assert list(stream) == []
    assert stream.code() is grpc.StatusCode.OK
    assert stopped.wait(10)


def test_official_reflection_client(channel: grpc.Channel) -> None:
    reflected = ProtoReflectionDescriptorDatabase(channel)
    services = set(reflected.get_services())
    assert {"envmanager.EnvManagerService", "grpc.health.v1.Health"} <= services
    pool = DescriptorPool(reflected)
    service = pool.FindServiceByName("envmanager.EnvManagerService")
    assert len(service.methods) == 13
    assert service.methods_by_name["CreateEnv"].output_type.name == "CreateEnvResponse"
    record = pool.FindMessageTypeByName("envmanager.OperationRecord")
    assert record.fields_by_name["metadata_json"].number == 14
    health = pool.FindServiceByName("grpc.health.v1.Health")
    assert {"Check", "Watch"} <= set(health.methods_by_name)
