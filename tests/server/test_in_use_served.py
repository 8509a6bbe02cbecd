"""Over gRPC and HTTP, envs a live process uses stay through cleanup and delete (issue 19).

gRPC's CleanupResponse has only ``deleted``: the envs left for their processes
are named, with the pids, in the audit record of each (GetOperations'
``metadata_json``, status ``SUCCESS``, ``outcome: skipped_in_use``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

import uv_envs
from tests.support.env_users import EnvUsers
from uv_envs_server import EnvManagerClient
from uv_envs_server._generated import env_manager_pb2 as pb

from .conftest import OpenClient, OpenStub, Serve, rpc

KEY = uv_envs.EnvKey("wf", "node", "v1")


@pytest.fixture
def users() -> Iterator[EnvUsers]:
    started = EnvUsers()
    yield started
    started.stop_all()


def test_grpc_cleanup_and_delete_leave_an_env_a_process_runs_from(
    serve: Serve,
    open_client: OpenClient,
    open_stub: OpenStub,
    manager: uv_envs.EnvManager,
    users: EnvUsers,
) -> None:
    environment = manager.create(KEY, packages=["alpha"])
    pid = users.interpreter(environment.python_path)
    target = serve(manager, min_cleanup_idle_hours=0)
    client: EnvManagerClient = open_client(target, timeout=60)
    stub = open_stub(target)

    assert list(rpc(stub.Cleanup, pb.CleanupRequest(idle_hours=0)).deleted) == []
    records = client.operations("wf").items
    (skipped,) = [r for r in records if r.operation == "cleanup"]
    assert skipped.status == "SUCCESS"
    metadata = skipped.metadata
    assert metadata["outcome"] == "skipped_in_use"
    assert metadata["pids"] == [pid]

    with pytest.raises(uv_envs.EnvironmentInUse, match=f"pid {pid}") as caught:
        client.delete(KEY)
    assert isinstance(caught.value.__cause__, grpc.RpcError)
    assert caught.value.__cause__.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert environment.env_path.is_dir()

    users.stop(pid)
    assert list(rpc(stub.Cleanup, pb.CleanupRequest(idle_hours=0)).deleted) == ["wf/node/v1"]


def test_http_cleanup_and_delete_leave_an_env_a_process_runs_from(
    http_serve: Callable[..., Any], manager: uv_envs.EnvManager, users: EnvUsers
) -> None:
    pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")
    import httpx

    from uv_envs_server import HttpEnvClient

    environment = manager.create(KEY, packages=["alpha"])
    pid = users.working_directory(environment.env_path)
    server = http_serve(manager, min_cleanup_idle_hours=0)  # no floor: only the process keeps it
    with HttpEnvClient(server.url, timeout=60) as api:
        report = api.http.post("/v1/cleanup", json={"idle_hours": 0}).json()
        assert report["deleted"] == []
        (in_use,) = report["skipped_in_use"]
        assert in_use["key"] == "wf/node/v1"
        assert [p["pid"] for p in in_use["processes"]] == [pid]
        assert "has its working directory in it" in in_use["processes"][0]["description"]

        with pytest.raises(uv_envs.EnvironmentInUse, match=f"pid {pid}"):
            api.delete(KEY)
        answer = httpx.delete(f"{server.url}/v1/envs/wf/node/v1", timeout=60)
        assert answer.status_code == 423
        assert environment.env_path.is_dir()

        users.stop(pid)
        cleaned = api.http.post("/v1/cleanup", json={"idle_hours": 0})
        assert cleaned.json()["deleted"] == ["wf/node/v1"]
