"""Our health and reflection services against the official grpcio clients.

grpcio-health-checking and grpcio-reflection are not dependencies of uv-envs
(the services are implemented from vendored protos); when they are installed,
these tests show that standard tooling understands our answers, and that
their copies of the protos load next to ours without a descriptor clash.
"""

from __future__ import annotations

import grpc
import pytest


def test_official_health_client(channel: grpc.Channel) -> None:
    health = pytest.importorskip("grpc_health.v1.health_pb2")
    health_grpc = pytest.importorskip("grpc_health.v1.health_pb2_grpc")
    stub = health_grpc.HealthStub(channel)
    for service in ("", "envmanager.EnvManagerService"):
        answer = stub.Check(health.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(health.HealthCheckRequest(service="nope"), timeout=10)
    assert info.value.code() is grpc.StatusCode.NOT_FOUND


def test_official_reflection_client(channel: grpc.Channel) -> None:
    database = pytest.importorskip("grpc_reflection.v1alpha.proto_reflection_descriptor_database")
    from google.protobuf.descriptor_pool import DescriptorPool

    reflected = database.ProtoReflectionDescriptorDatabase(channel)
    assert "envmanager.EnvManagerService" in reflected.get_services()
    pool = DescriptorPool(reflected)
    service = pool.FindServiceByName("envmanager.EnvManagerService")
    assert len(service.methods) == 13
    assert service.methods_by_name["CreateEnv"].output_type.name == "CreateEnvResponse"
    record = pool.FindMessageTypeByName("envmanager.OperationRecord")
    assert record.fields_by_name["metadata_json"].number == 14
