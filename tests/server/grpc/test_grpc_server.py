"""The server over the wire, on the fake uv: fast checks of every RPC's translation.

Calls go through WTB-style generated stubs (``EnvManagerServiceStub``) where the
exact status code or message field matters, and through the
:class:`~uv_envs_server.RemoteEnvManager` methods of :class:`EnvManagerClient`
elsewhere.
"""

from __future__ import annotations

import json
import re
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

import uv_envs
import uv_envs_server
from tests.server.conftest import rpc
from uv_envs import testing
from uv_envs_server import (
    EnvManagerClient,
    EnvManagerServer,
    GrpcEnvironmentProvider,
    RemoteError,
    ServeOptions,
    create_server,
)
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.server.conftest import GatedManager, HttpServe, Ident, OpenClient, OpenStub, Serve
    from uv_envs_server import HttpEnvironmentProvider

    # Generic only in the type stubs.
    WatchCall = grpc.UnaryStreamMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ]

IDENT: Ident = {"workflow_id": "wf", "node_id": "node", "version_id": "v1"}


@pytest.fixture
def stub(channel: grpc.Channel) -> env_manager_pb2_grpc.EnvManagerServiceStub:
    return env_manager_pb2_grpc.EnvManagerServiceStub(channel)


def _code(call: Callable[..., object], request: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    details = info.value.details() or ""
    assert "Traceback" not in details
    return info.value.code(), details


def test_health_is_serving(fake_client: EnvManagerClient) -> None:
    assert fake_client.health() == "SERVING"
    assert fake_client.health("envmanager.EnvManagerService") == "SERVING"
    assert fake_client.health("no.such.Service") == "SERVICE_UNKNOWN"


def _watch(channel: grpc.Channel) -> WatchCall:
    stub: Any = health_pb2_grpc.HealthStub(channel)  # the stubs type it without its methods
    watch: WatchCall = stub.Watch
    return watch


def test_health_watch_sees_shutdown(small_server: tuple[EnvManagerServer, grpc.Channel]) -> None:
    server, channel = small_server
    watch = _watch(channel)
    stream = watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
    # 4 workers allow one Watch stream: the rest stay free for real work.
    with pytest.raises(grpc.RpcError) as info:
        next(watch(health_pb2.HealthCheckRequest(service=""), timeout=30))
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    stopped = server.stop(5)
    assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
    assert stopped.wait(10)


def test_a_closed_watch_frees_its_place(
    small_server: tuple[EnvManagerServer, grpc.Channel],
) -> None:
    watch = _watch(small_server[1])
    for _ in range(3):  # one place: each stream must give it back when cancelled
        stream = _watch_when_free(watch)
        stream.cancel()


def test_a_watch_after_the_drain_hears_not_serving_and_ends(
    small_server: tuple[EnvManagerServer, grpc.Channel],
) -> None:
    server, channel = small_server
    server.health.shutdown()  # the drain, without stopping the server
    stream = _watch(channel)(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert [answer.status for answer in stream] == [health_pb2.HealthCheckResponse.NOT_SERVING]
    assert stream.code() is grpc.StatusCode.OK


def _watch_when_free(watch: WatchCall) -> grpc.Call:
    # The server learns of a cancel asynchronously: retry until its place is free again.
    for _ in range(200):
        stream = watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
        try:
            first = next(stream)
        except grpc.RpcError as err:
            refused = err
        else:
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            return stream
        assert refused.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        time.sleep(0.05)
    pytest.fail("a cancelled Watch stream never gave its place back")


def test_reflection_lists_and_describes_services(channel: grpc.Channel) -> None:
    # v1 has v1alpha's messages under another package: the same classes speak both.
    for package in ("grpc.reflection.v1", "grpc.reflection.v1alpha"):
        call = channel.stream_stream(
            f"/{package}.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        request = reflection_pb2.ServerReflectionRequest
        requests = [
            request(list_services=""),
            request(file_containing_symbol="envmanager.EnvManagerService"),
            request(file_containing_symbol="envmanager.ListDepsResponse.LockedVersionsEntry"),
            request(file_by_filename=health_pb2.DESCRIPTOR.name),
            request(file_containing_symbol="no.such.Symbol"),
        ]
        answers: list[Any] = list(call(iter(requests), timeout=30))
        names = {s.name for s in answers[0].list_services_response.service}
        assert {
            "envmanager.EnvManagerService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
        } <= names
        described = answers[1].file_descriptor_response.file_descriptor_proto[0]
        assert descriptor_pb2.FileDescriptorProto.FromString(
            described
        ) == descriptor_pb2.FileDescriptorProto.FromString(pb.DESCRIPTOR.serialized_pb)
        assert answers[2].file_descriptor_response.file_descriptor_proto[0] == described
        assert answers[3].file_descriptor_response.file_descriptor_proto
        assert answers[4].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]


def test_lifecycle_through_wtb_stubs(  # noqa: PLR0915 - one walk through every RPC, as WTB calls them
    stub: env_manager_pb2_grpc.EnvManagerServiceStub, fake_uv: testing.FakeUvExecutor
) -> None:
    created = stub.CreateEnv(pb.CreateEnvRequest(**IDENT, packages=["alpha==1.0"]), timeout=30)
    assert created.status == "READY"
    assert created.env_path
    assert created.python_version
    assert "alpha==1.0" in created.pyproject_toml
    assert (IDENT["workflow_id"], IDENT["node_id"], IDENT["version_id"]) == (
        created.workflow_id,
        created.node_id,
        created.version_id,
    )
    lock_calls = fake_uv.count("lock")
    again = stub.CreateEnv(pb.CreateEnvRequest(**IDENT, packages=["alpha==1.0"]), timeout=30)
    assert (again.status, again.env_path) == ("READY", created.env_path)
    assert fake_uv.count("lock") == lock_calls, "a repeated CreateEnv rebuilt the env"

    status = stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT), timeout=30)
    assert (status.status, status.env_path) == ("READY", created.env_path)
    assert status.has_pyproject
    assert status.has_uv_lock
    assert status.has_venv
    metadata = json.loads(status.metadata_json)
    assert metadata["key"] == IDENT
    assert metadata["status"] == "READY"

    added = stub.AddDeps(pb.DepsRequest(**IDENT, packages=["gamma"]), timeout=30)
    assert (added.status, added.exit_code) == ("SUCCESS", 0)
    deps = stub.ListDeps(pb.ListDepsRequest(**IDENT), timeout=30)
    assert any(d.startswith("gamma") for d in deps.dependencies)
    assert deps.locked_versions["alpha"] == "1.0"
    assert deps.locked_versions["gamma"] == "1.0"

    updated = stub.UpdateDeps(pb.DepsRequest(**IDENT), timeout=30)
    assert updated.status == "SUCCESS"
    removed = stub.RemoveDeps(pb.DepsRequest(**IDENT, packages=["gamma"]), timeout=30)
    assert removed.status == "SUCCESS"
    assert "gamma" not in stub.ListDeps(pb.ListDepsRequest(**IDENT), timeout=30).locked_versions
    synced = stub.SyncEnv(pb.SyncEnvRequest(**IDENT), timeout=30)
    assert (synced.status, synced.exit_code) == ("SUCCESS", 0)

    exported = stub.ExportEnv(pb.ExportEnvRequest(**IDENT), timeout=30)
    assert "alpha" in exported.pyproject_toml
    assert "alpha" in exported.uv_lock

    operations = stub.GetOperations(pb.GetOperationsRequest(workflow_id="wf"), timeout=30)
    assert operations.total >= 5
    assert operations.limit == 50
    names = [item.operation for item in operations.items]
    assert "create" in names or "ensure" in names
    first = operations.items[0]
    assert first.started_at_unix > 0
    assert first.finished_at_unix >= first.started_at_unix
    assert json.loads(first.metadata_json) is not None
    page = stub.GetOperations(pb.GetOperationsRequest(workflow_id="wf", limit=2, offset=1))
    assert (page.limit, page.offset, len(page.items)) == (2, 1, 2)

    cleaned = stub.Cleanup(pb.CleanupRequest(idle_hours=24), timeout=30)
    assert list(cleaned.deleted) == []
    assert abs(cleaned.checked_at_unix - time.time()) < 60

    assert stub.DeleteEnv(pb.DeleteEnvRequest(**IDENT), timeout=30).status == "DELETED"
    assert stub.DeleteEnv(pb.DeleteEnvRequest(**IDENT), timeout=30).status == "NOT_FOUND"
    assert not Path(created.env_path).exists()
    gone = stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT), timeout=30)
    assert (gone.status, gone.metadata_json) == ("NOT_FOUND", "")

    deleted = stub.DeleteOperations(pb.DeleteOperationsRequest(workflow_id="wf"), timeout=30)
    assert deleted.workflow_id == "wf"
    assert deleted.deleted_count >= 5
    assert list(deleted.deleted_node_ids) == ["node"]
    assert stub.GetOperations(pb.GetOperationsRequest(workflow_id="wf")).total == 0


def test_failed_add_answers_failed_and_leaves_the_env(
    stub: env_manager_pb2_grpc.EnvManagerServiceStub,
) -> None:
    stub.CreateEnv(pb.CreateEnvRequest(**IDENT, packages=["alpha==1.0"]), timeout=30)
    before = stub.ExportEnv(pb.ExportEnvRequest(**IDENT), timeout=30)
    failed = stub.AddDeps(pb.DepsRequest(**IDENT, packages=["no-such-package"]), timeout=30)
    assert failed.status == "FAILED"
    assert failed.exit_code != 0
    assert "no-such-package" in failed.stderr
    after = stub.ExportEnv(pb.ExportEnvRequest(**IDENT), timeout=30)
    assert (after.pyproject_toml, after.uv_lock) == (before.pyproject_toml, before.uv_lock)
    status = stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT), timeout=30)
    assert status.status == "READY"


class _UvFailingManager:
    """Every uv-backed operation fails the way the core reports a uv failure."""

    cluster = None  # serves no Ray cluster: the server reads this when it starts

    def _fail(self, *args: object, **kwargs: object) -> None:
        raise uv_envs.UvError(
            "uv sync failed",
            command=("uv", "sync"),
            exit_code=2,
            stdout="Resolved 1 package",
            stderr="error: disk on fire",
        )

    sync = add = update = remove = _fail

    def _timeout(self, *args: object, **kwargs: object) -> None:
        raise uv_envs.UvTimeout("uv ran longer than 1800 seconds", command=("uv", "lock"))

    provision = _timeout


@pytest.mark.parametrize("rpc", ["SyncEnv", "AddDeps", "UpdateDeps", "RemoveDeps"])
def test_uv_failure_in_an_operation_is_a_failed_answer(serve: Serve, rpc: str) -> None:
    target = serve(_UvFailingManager())
    request = {
        "SyncEnv": pb.SyncEnvRequest(**IDENT),
        "AddDeps": pb.DepsRequest(**IDENT, packages=["alpha"]),
        "UpdateDeps": pb.DepsRequest(**IDENT),
        "RemoveDeps": pb.DepsRequest(**IDENT, packages=["alpha"]),
    }[rpc]
    with grpc.insecure_channel(target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        answer = getattr(stub, rpc)(request, timeout=30)
        assert (answer.status, answer.exit_code) == ("FAILED", 2)
        assert answer.stderr == "error: disk on fire"
        assert answer.stdout == "Resolved 1 package"
        assert (answer.workflow_id, answer.node_id, answer.version_id) == ("wf", "node", "v1")
        code, details = _code(stub.CreateEnv, pb.CreateEnvRequest(**IDENT))
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED
        assert "1800 seconds" in details


def test_create_that_does_not_resolve_is_failed_precondition(
    stub: env_manager_pb2_grpc.EnvManagerServiceStub,
) -> None:
    code, details = _code(stub.CreateEnv, pb.CreateEnvRequest(**IDENT, packages=["nope"]))
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert "nope" in details
    assert stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT)).status == "NOT_FOUND"


@pytest.mark.parametrize(
    ("rpc", "request_"),
    [
        ("GetEnvStatus", pb.GetEnvStatusRequest(workflow_id="../etc", node_id="n")),
        ("GetEnvStatus", pb.GetEnvStatusRequest(workflow_id="wf", node_id="")),
        ("CreateEnv", pb.CreateEnvRequest(workflow_id="wf", node_id="n/x")),
        ("CreateEnv", pb.CreateEnvRequest(**IDENT, packages=["--index-url=http://evil"])),
        ("CreateEnv", pb.CreateEnvRequest(**IDENT, packages=["pkg @ file:///tmp/x"])),
        ("CreateEnv", pb.CreateEnvRequest(**IDENT, python_version="banana")),
        ("CreateEnv", pb.CreateEnvRequest(**IDENT, requirements_file_content=b"\xff\xfe")),
        ("CreateEnv", pb.CreateEnvRequest(**IDENT, requirements_file_content=b"-e ./x\n")),
        ("DeleteEnv", pb.DeleteEnvRequest(workflow_id="", node_id="n")),
        ("AddDeps", pb.DepsRequest(**IDENT, packages=[""])),
        ("UpdateDeps", pb.DepsRequest(**IDENT, requirements_file_content=b"alpha\n")),
        ("Cleanup", pb.CleanupRequest(idle_hours=-1)),
        ("DeleteOperations", pb.DeleteOperationsRequest(workflow_id="")),
        ("DeleteOperations", pb.DeleteOperationsRequest(workflow_id="wf", node_id="a b")),
        ("GetOperations", pb.GetOperationsRequest(limit=-5)),
        ("GetOperations", pb.GetOperationsRequest(offset=-1)),
    ],
)
def test_bad_input_is_invalid_argument(
    stub: env_manager_pb2_grpc.EnvManagerServiceStub, rpc: str, request_: object
) -> None:
    code, details = _code(getattr(stub, rpc), request_)
    assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    assert details


@pytest.mark.parametrize(
    ("rpc", "request_"),
    [
        ("AddDeps", pb.DepsRequest(**IDENT, packages=["alpha"])),
        ("UpdateDeps", pb.DepsRequest(**IDENT)),
        ("RemoveDeps", pb.DepsRequest(**IDENT, packages=["alpha"])),
        ("ListDeps", pb.ListDepsRequest(**IDENT)),
        ("SyncEnv", pb.SyncEnvRequest(**IDENT)),
        ("ExportEnv", pb.ExportEnvRequest(**IDENT)),
    ],
)
def test_missing_env_is_not_found(
    stub: env_manager_pb2_grpc.EnvManagerServiceStub, rpc: str, request_: object
) -> None:
    code, details = _code(getattr(stub, rpc), request_)
    assert code is grpc.StatusCode.NOT_FOUND
    assert "wf" in details


def test_run_code_is_unimplemented(stub: env_manager_pb2_grpc.EnvManagerServiceStub) -> None:
    code, details = _code(stub.RunCode, pb.RunCodeRequest(**IDENT, code="print(1)"))
    assert code is grpc.StatusCode.UNIMPLEMENTED
    assert "Ray" in details


class _BrokenManager:
    cluster = None  # serves no Ray cluster: the server reads this when it starts

    def status(self, key: uv_envs.EnvKey) -> None:
        raise KeyError("a secret internal detail")

    def delete(self, key: uv_envs.EnvKey) -> None:
        raise uv_envs.StorageError("metadata.json is unreadable")

    def dependencies(self, key: uv_envs.EnvKey) -> None:
        raise uv_envs.EnvironmentBusy(f"{key} is locked by another operation")


def test_unexpected_errors_are_internal_without_traceback(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    target = serve(_BrokenManager())
    with grpc.insecure_channel(target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        code, details = _code(stub.GetEnvStatus, pb.GetEnvStatusRequest(**IDENT))
        assert code is grpc.StatusCode.INTERNAL
        assert "secret" not in details
        assert "KeyError" in details
        code, details = _code(stub.DeleteEnv, pb.DeleteEnvRequest(**IDENT))
        assert code is grpc.StatusCode.INTERNAL
        # The class and the request id that finds the details in the server log.
        assert "StorageError" in details
        assert "metadata.json" not in details
        request_id = re.search(r"request id ([0-9a-f]{32})", details)
        assert request_id
        code, details = _code(stub.ListDeps, pb.ListDepsRequest(**IDENT))
        assert code is grpc.StatusCode.ABORTED
    assert "a secret internal detail" in caplog.text, "the server log keeps the real error"
    assert f"metadata.json is unreadable (request id {request_id.group(1)})" in caplog.text


def test_client_raises_the_core_exceptions(
    fake_client: EnvManagerClient, stub: env_manager_pb2_grpc.EnvManagerServiceStub
) -> None:
    with pytest.raises(uv_envs.EnvironmentNotFound, match="wf"):
        fake_client.dependencies(uv_envs.EnvKey("wf", "node"))
    with pytest.raises(uv_envs.InvalidIdentifier):  # no EnvKey holds it: only the wire sends it
        rpc(stub.GetEnvStatus, pb.GetEnvStatusRequest(workflow_id="../x", node_id="node"))
    with pytest.raises(uv_envs.InvalidInput):
        fake_client.ensure(uv_envs.EnvKey("wf", "node"), python="banana")
    with pytest.raises(uv_envs.ResolutionFailed):
        fake_client.ensure(uv_envs.EnvKey("wf", "node"), ["nope"])
    with pytest.raises(RemoteError) as info:
        rpc(stub.RunCode, pb.RunCodeRequest(workflow_id="wf", node_id="node", code="print(1)"))
    assert info.value.code is grpc.StatusCode.UNIMPLEMENTED


def test_client_round_trip(
    fake_client: EnvManagerClient, stub: env_manager_pb2_grpc.EnvManagerServiceStub
) -> None:
    key = uv_envs.EnvKey("wf", "node")
    python = fake_client.ensure(key, ["alpha"]).python_path
    status = fake_client.get(key)
    assert python == Path(status.env_path) / ".venv" / "bin" / "python"
    assert fake_client.add(key, requirements_text="gamma\n").exit_code == 0
    assert set(fake_client.dependencies(key).locked) == {"alpha", "gamma"}
    assert fake_client.update(key, ["alpha"]).exit_code == 0
    assert fake_client.remove(key, ["gamma"]).exit_code == 0
    assert fake_client.sync(key).exit_code == 0
    assert "alpha" in fake_client.export(key).uv_lock
    assert fake_client.operations("wf", "node", status="SUCCESS").total >= 1
    # 0 (or unset) means the server's minimum idle time: the env just used stays.
    assert rpc(stub.Cleanup, pb.CleanupRequest(idle_hours=0)).deleted == []
    assert fake_client.delete(key).status is uv_envs.DeleteStatus.DELETED
    assert fake_client.delete_operations("wf", "node").deleted_count >= 1


def test_status_is_answered_while_a_create_runs(
    serve: Serve, gated_manager: GatedManager, open_client: OpenClient, open_stub: OpenStub
) -> None:
    manager, gate = gated_manager()
    target = serve(manager, max_workers=4)
    client, stub = open_client(target, timeout=30), open_stub(target)
    slow = uv_envs.EnvKey("wf", "slow")
    with futures.ThreadPoolExecutor(1) as pool:
        creating = pool.submit(client.ensure, slow, ["alpha"])
        try:
            assert gate.entered.wait(30), "the create never reached uv"
            started = time.monotonic()
            status = rpc(
                stub.GetEnvStatus,
                pb.GetEnvStatusRequest(workflow_id="wf", node_id="slow"),
                timeout=5,
            )
            other = rpc(
                stub.GetEnvStatus,
                pb.GetEnvStatusRequest(workflow_id="wf", node_id="other"),
                timeout=5,
            )
            assert time.monotonic() - started < 5
            assert status.status == "CREATING"
            assert other.status == "NOT_FOUND"
            assert client.health(timeout=5) == "SERVING"
        finally:
            gate.release.set()
        assert str(creating.result(timeout=60).python_path).endswith("/.venv/bin/python")
    assert client.get(slow).status is uv_envs.EnvStatus.READY


def test_a_busy_env_is_aborted(
    serve: Serve, gated_manager: GatedManager, open_client: OpenClient
) -> None:
    manager, gate = gated_manager(lock_timeout=0.5)
    client = open_client(serve(manager, max_workers=4), timeout=30)
    busy = uv_envs.EnvKey("wf", "busy")
    with futures.ThreadPoolExecutor(1) as pool:
        creating = pool.submit(client.ensure, busy, ["alpha"])
        try:
            assert gate.entered.wait(30)
            with pytest.raises(uv_envs.EnvironmentBusy):
                client.add(busy, ["gamma"])
        finally:
            gate.release.set()
        creating.result(timeout=60)


def _provider(
    kind: str, manager: uv_envs.EnvManager, target: str, http_serve: HttpServe
) -> GrpcEnvironmentProvider | HttpEnvironmentProvider | uv_envs.LocalEnvironmentProvider:
    """The provider of one kind over one manager: in process, over gRPC, over HTTP."""
    if kind == "grpc":
        return GrpcEnvironmentProvider(target, timeout=30)
    if kind == "http":
        pytest.importorskip("fastapi", reason="the HTTP provider needs the [http] extra")
        return uv_envs_server.HttpEnvironmentProvider(http_serve(manager).url, timeout=30)
    return uv_envs.LocalEnvironmentProvider(manager)


@pytest.mark.parametrize("kind", ["local", "grpc", "http"])
def test_provider_contract(
    kind: str, fake_manager: uv_envs.EnvManager, fake_target: str, http_serve: HttpServe
) -> None:
    provider = _provider(kind, fake_manager, fake_target, http_serve)
    try:
        assert isinstance(provider, uv_envs.IEnvironmentProvider)
        testing.check_provider_contract(
            provider, {"workflow_id": "wf", "node_id": "node", "packages": ["alpha"]}
        )
        with pytest.raises(uv_envs.InvalidIdentifier):
            provider.create_environment("bad", {"workflow_id": "../x", "node_id": "n"})
    finally:
        if not isinstance(provider, uv_envs.LocalEnvironmentProvider):  # remote
            provider.close()


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_every_provider_returns_the_same_dicts(
    kind: str, fake_manager: uv_envs.EnvManager, fake_target: str, http_serve: HttpServe
) -> None:
    local = uv_envs.LocalEnvironmentProvider(fake_manager)
    remote = _provider(kind, fake_manager, fake_target, http_serve)
    assert not isinstance(remote, uv_envs.LocalEnvironmentProvider)
    try:
        config = {"workflow_id": "wf", "node_id": "same", "packages": ["alpha"]}
        assert remote.create_environment("v", dict(config)) == local.create_environment(
            "v", dict(config)
        )
        assert remote.get_runtime_env("v") == local.get_runtime_env("v")
    finally:
        remote.close()


def test_create_server_refuses_a_taken_port(fake_manager: uv_envs.EnvManager) -> None:
    server, port = create_server(fake_manager, ServeOptions(max_workers=1))
    try:
        with pytest.raises(OSError, match="could not listen"):
            create_server(fake_manager, ServeOptions(port=port, max_workers=1))
    finally:
        server.stop(None)
        server.executor.shutdown(wait=True)


def test_many_status_calls_in_parallel(fake_client: EnvManagerClient) -> None:
    key = uv_envs.EnvKey("wf", "node")
    fake_client.ensure(key, ["alpha"])
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(20):
                assert fake_client.get(key).status is uv_envs.EnvStatus.READY
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
