"""An audit database that is away: UNAVAILABLE over gRPC, 503 over HTTP, never its address.

The first half runs against a real PostgreSQL URL nobody listens on (the
record cannot be started, so nothing changes); the second against an audit
log whose ``finish`` fails as the PostgreSQL log's does when the database goes
away mid-operation (the env was changed, the record is pending).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import grpc
import pytest

import uv_envs
from uv_envs import EnvKey, EnvStatus
from uv_envs.testing import FakePythonFinder, FakeUvExecutor, InMemoryAuditLog
from uv_envs_server import EnvManagerClient, HttpEnvClient
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc

if TYPE_CHECKING:
    from uv_envs._audit.log import AuditOutcome

    from .conftest import HttpServe, OpenClient, Serve

KEY = EnvKey("wf", "node", "v1")
IDENT = {"workflow_id": "wf", "node_id": "node", "version_id": "v1"}  # an HTTP body's ids
DATABASE = "db.internal.example"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@attrs.define
class FinishFails:
    """An audit log whose records start but cannot be completed (the database went away)."""

    inner: InMemoryAuditLog = attrs.field(factory=InMemoryAuditLog)

    def start(self, key: EnvKey, operation: str, metadata: Mapping[str, Any] | None = None) -> int:
        return self.inner.start(key, operation, metadata)

    def finish(self, record_id: int, outcome: AuditOutcome) -> None:
        raise uv_envs.AuditUnavailable(
            f"audit database postgresql://u@{DATABASE}:5432/audit unreachable; the operation "
            f"itself finished {outcome.status}, and record {record_id} will be completed later",
            finished=str(outcome.status),
        )

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the rest of the port, unchanged
        return getattr(self.inner, name)


def manager_with(tmp_path: Path, fake_uv: FakeUvExecutor, audit: Any) -> uv_envs.EnvManager:  # noqa: ANN401 - any AuditLog
    return uv_envs.EnvManager(
        uv_envs.Settings(root=tmp_path / "root", lock_timeout=5),
        executor=fake_uv,
        python_finder=FakePythonFinder(),
        audit=audit,
    )


@pytest.fixture
def unreachable(tmp_path: Path, fake_uv: FakeUvExecutor) -> Iterator[uv_envs.EnvManager]:
    from uv_envs._audit.postgres import PostgresAuditLog

    pytest.importorskip("psycopg", reason="psycopg is not installed: the postgres extra")
    audit = PostgresAuditLog(f"postgresql://u@127.0.0.1:{free_port()}/audit", timeout=1)
    manager = manager_with(tmp_path, fake_uv, audit)
    yield manager
    manager.close()


@pytest.fixture
def finish_fails(tmp_path: Path, fake_uv: FakeUvExecutor) -> uv_envs.EnvManager:
    return manager_with(tmp_path, fake_uv, FinishFails())


def grpc_create(target: str) -> grpc.RpcError:
    with grpc.insecure_channel(target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        request = pb.CreateEnvRequest(
            workflow_id="wf", node_id="node", version_id="v1", packages=["alpha==1.0"]
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateEnv(request, timeout=30)
    error: grpc.RpcError = caught.value
    return error


def test_grpc_says_unavailable_and_nothing_changed(
    serve: Serve, open_client: OpenClient, unreachable: uv_envs.EnvManager
) -> None:
    target = serve(unreachable)
    error = grpc_create(target)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    details = error.details() or ""
    assert "nothing was changed" in details
    assert "127.0.0.1" not in details
    assert "postgresql" not in details
    with pytest.raises(uv_envs.AuditUnavailable) as raised:
        open_client(target, timeout=30).ensure(KEY, ["alpha==1.0"])
    assert raised.value.finished is None
    assert unreachable.list_environments() == []


def test_http_says_503_with_retry_after_and_nothing_changed(
    http_serve: HttpServe, unreachable: uv_envs.EnvManager
) -> None:
    import httpx

    server = http_serve(unreachable)
    body = {**IDENT, "packages": ["alpha==1.0"]}
    response = httpx.post(f"{server.url}/v1/envs", json=body, timeout=30)
    assert response.status_code == 503
    assert response.headers["retry-after"].isdigit()
    problem = response.json()
    assert problem["error_class"] == "AuditUnavailable"
    assert "nothing was changed" in problem["detail"]
    assert "127.0.0.1" not in response.text
    assert "finished" not in problem
    with HttpEnvClient(server.url, timeout=30) as client, pytest.raises(uv_envs.AuditUnavailable):
        client.ensure(KEY, ["alpha==1.0"])
    assert unreachable.list_environments() == []


def test_grpc_says_how_the_operation_ended_when_only_its_record_is_pending(
    serve: Serve, finish_fails: uv_envs.EnvManager, caplog: pytest.LogCaptureFixture
) -> None:
    target = serve(finish_fails)
    error = grpc_create(target)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    details = error.details() or ""
    assert "finished SUCCESS" in details
    assert DATABASE not in details
    assert DATABASE in caplog.text  # the operator finds the database in the log
    assert finish_fails.status(KEY).status is EnvStatus.READY
    with (
        EnvManagerClient(target, timeout=30) as client,
        pytest.raises(uv_envs.AuditUnavailable) as raised,
    ):
        client.ensure(KEY, ["alpha==1.0"])
    assert raised.value.finished == "SUCCESS"


def test_http_says_how_the_operation_ended_when_only_its_record_is_pending(
    http_serve: HttpServe, finish_fails: uv_envs.EnvManager
) -> None:
    server = http_serve(finish_fails)
    with (
        HttpEnvClient(server.url, timeout=30) as client,
        pytest.raises(uv_envs.AuditUnavailable) as raised,
    ):
        client.ensure(KEY, ["alpha==1.0"])
    assert raised.value.finished == "SUCCESS"
    assert "finished SUCCESS" in str(raised.value)
    assert DATABASE not in str(raised.value)
    assert finish_fails.status(KEY).status is EnvStatus.READY
