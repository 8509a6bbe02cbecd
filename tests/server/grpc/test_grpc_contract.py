"""The wire contract, checked field by field against the compiled descriptor.

These tables are issue 5's table written out: WTB's stubs rely on every name,
number and type here. A failing test means the contract changed.
"""

from __future__ import annotations

import importlib.util

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from uv_envs_server._generated import env_manager_pb2 as pb

IDENT = {"workflow_id": (1, "string"), "node_id": (2, "string"), "version_id": (3, "string")}
OPS = {
    "status": (4, "string"),
    "stdout": (5, "string"),
    "stderr": (6, "string"),
    "exit_code": (7, "int32"),
}

MESSAGES: dict[str, dict[str, tuple[int, str]]] = {
    "GetEnvStatusRequest": IDENT,
    "DeleteEnvRequest": IDENT,
    "ListDepsRequest": IDENT,
    "SyncEnvRequest": IDENT,
    "ExportEnvRequest": IDENT,
    "EnvStatusResponse": {
        **IDENT,
        "status": (4, "string"),
        "env_path": (5, "string"),
        "has_pyproject": (6, "bool"),
        "has_uv_lock": (7, "bool"),
        "has_venv": (8, "bool"),
        "metadata_json": (9, "string"),
    },
    "CreateEnvRequest": {
        **IDENT,
        "python_version": (4, "string"),
        "packages": (5, "repeated string"),
        "requirements_file_content": (6, "bytes"),
        "requirements_file_name": (7, "string"),
    },
    "CreateEnvResponse": {
        **IDENT,
        "env_path": (4, "string"),
        "python_version": (5, "string"),
        "status": (6, "string"),
        "pyproject_toml": (7, "string"),
    },
    "DeleteEnvResponse": {**IDENT, "status": (4, "string")},
    "DepsRequest": {
        **IDENT,
        "packages": (4, "repeated string"),
        "requirements_file_content": (5, "bytes"),
        "requirements_file_name": (6, "string"),
    },
    "DepsOperationResponse": {**IDENT, **OPS},
    "SyncEnvResponse": {**IDENT, **OPS},
    "ListDepsResponse": {
        **IDENT,
        "dependencies": (4, "repeated string"),
        "locked_versions": (5, "map<string, string>"),
    },
    "RunCodeRequest": {**IDENT, "code": (4, "string"), "timeout": (5, "int32")},
    "RunCodeResponse": {
        **IDENT,
        "stdout": (4, "string"),
        "stderr": (5, "string"),
        "exit_code": (6, "int32"),
    },
    "ExportEnvResponse": {**IDENT, "pyproject_toml": (4, "string"), "uv_lock": (5, "string")},
    "CleanupRequest": {"idle_hours": (1, "int32")},
    "CleanupResponse": {"deleted": (1, "repeated string"), "checked_at_unix": (2, "int64")},
    "GetOperationsRequest": {
        "workflow_id": (1, "string"),
        "node_id": (2, "string"),
        "status": (3, "string"),
        "limit": (4, "int32"),
        "offset": (5, "int32"),
    },
    "OperationRecord": {
        "id": (1, "int64"),
        "workflow_id": (2, "string"),
        "node_id": (3, "string"),
        "version_id": (4, "string"),
        "operation": (5, "string"),
        "status": (6, "string"),
        "started_at_unix": (7, "int64"),
        "finished_at_unix": (8, "int64"),
        "duration_ms": (9, "int64"),
        "stdout": (10, "string"),
        "stderr": (11, "string"),
        "exit_code": (12, "int32"),
        "error": (13, "string"),
        "metadata_json": (14, "string"),
    },
    "OperationListResponse": {
        "total": (1, "int32"),
        "limit": (2, "int32"),
        "offset": (3, "int32"),
        "items": (4, "repeated envmanager.OperationRecord"),
    },
    "DeleteOperationsRequest": {"workflow_id": (1, "string"), "node_id": (2, "string")},
    "DeleteOperationsResponse": {
        "workflow_id": (1, "string"),
        "deleted_count": (2, "int32"),
        "node_id": (3, "string"),
        "deleted_node_ids": (4, "repeated string"),
    },
}

RPCS = {
    "GetEnvStatus": ("GetEnvStatusRequest", "EnvStatusResponse"),
    "CreateEnv": ("CreateEnvRequest", "CreateEnvResponse"),
    "DeleteEnv": ("DeleteEnvRequest", "DeleteEnvResponse"),
    "AddDeps": ("DepsRequest", "DepsOperationResponse"),
    "UpdateDeps": ("DepsRequest", "DepsOperationResponse"),
    "RemoveDeps": ("DepsRequest", "DepsOperationResponse"),
    "ListDeps": ("ListDepsRequest", "ListDepsResponse"),
    "SyncEnv": ("SyncEnvRequest", "SyncEnvResponse"),
    "RunCode": ("RunCodeRequest", "RunCodeResponse"),
    "ExportEnv": ("ExportEnvRequest", "ExportEnvResponse"),
    "Cleanup": ("CleanupRequest", "CleanupResponse"),
    "GetOperations": ("GetOperationsRequest", "OperationListResponse"),
    "DeleteOperations": ("DeleteOperationsRequest", "DeleteOperationsResponse"),
}

_SCALARS = {
    FieldDescriptor.TYPE_STRING: "string",
    FieldDescriptor.TYPE_BOOL: "bool",
    FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_INT32: "int32",
    FieldDescriptor.TYPE_INT64: "int64",
}


def _type_name(field: FieldDescriptor) -> str:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        message = field.message_type
        assert message is not None  # a message field names its type
        if message.GetOptions().map_entry:
            key, value = message.fields_by_name["key"], message.fields_by_name["value"]
            return f"map<{_type_name(key)}, {_type_name(value)}>"
        inner = message.full_name
    else:
        inner = _SCALARS[field.type]
    # protobuf 7 replaced ``label`` with ``is_repeated``; older versions have only ``label``.
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:
        # Gone from protobuf 7's stubs too; present where this branch runs.
        repeated = field.label == FieldDescriptor.LABEL_REPEATED  # type: ignore[attr-defined,unused-ignore]
    return f"repeated {inner}" if repeated else inner


def test_file_package_and_syntax() -> None:
    proto = descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
    assert proto.package == "envmanager"
    assert proto.syntax == "proto3"
    assert [s.name for s in proto.service] == ["EnvManagerService"]


def test_exactly_the_messages_of_the_table() -> None:
    assert set(pb.DESCRIPTOR.message_types_by_name) == set(MESSAGES)


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_message_fields(name: str) -> None:
    message = pb.DESCRIPTOR.message_types_by_name[name]
    found = {field.name: (field.number, _type_name(field)) for field in message.fields}
    assert found == MESSAGES[name]


def test_service_methods() -> None:
    service = pb.DESCRIPTOR.services_by_name["EnvManagerService"]
    assert service.full_name == "envmanager.EnvManagerService"
    found = {
        method.name: (method.input_type.name, method.output_type.name) for method in service.methods
    }
    assert found == RPCS
    assert not any(m.client_streaming or m.server_streaming for m in service.methods)


def test_wtb_style_stub_module_names_every_rpc() -> None:
    from uv_envs_server._generated import env_manager_pb2_grpc

    assert hasattr(env_manager_pb2_grpc, "EnvManagerServiceStub")
    assert hasattr(env_manager_pb2_grpc, "add_EnvManagerServiceServicer_to_server")
    for rpc in RPCS:
        assert hasattr(env_manager_pb2_grpc.EnvManagerServiceServicer, rpc)


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None,
    reason="grpcio-tools is not installed (it is in the dev extra); cannot recompile protos/",
)
def test_generated_code_matches_protos() -> None:
    """The committed code is stale when this fails: run `nox -s protos` and commit."""
    from uv_envs_server._generated import uvenvs_events_pb2
    from uv_envs_server._regen import EVENTS_PROTO, SERVICE_PROTO, compile_descriptors

    compiled = {
        name: descriptor_pb2.FileDescriptorProto.FromString(data)
        for name, data in compile_descriptors().items()
    }
    committed = {
        SERVICE_PROTO: pb.DESCRIPTOR.serialized_pb,
        EVENTS_PROTO: uvenvs_events_pb2.DESCRIPTOR.serialized_pb,
    }
    assert set(committed) == set(compiled)
    for name, data in committed.items():
        assert descriptor_pb2.FileDescriptorProto.FromString(data) == compiled[name], (
            f"{name}: uv_envs_server/_generated is stale; run `nox -s protos`"
        )
