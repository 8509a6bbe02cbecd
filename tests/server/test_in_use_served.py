"""Over gRPC and HTTP, envs a live process uses stay through cleanup (issue 19), and a
delete of one is deferred until the process exits (issue 28).

gRPC's CleanupResponse has only ``deleted``: the envs left for their processes
are named, with the pids, in the audit record of each (GetOperations'
``metadata_json``, status ``SUCCESS``, ``outcome: skipped_in_use``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import uv_envs
import uv_envs.testing
from tests.support.env_users import EnvUsers
from uv_envs_server import EnvManagerClient
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._grpc.wire import HELD_BY_KEY

from .conftest import HttpServe, OpenClient, OpenStub, Serve, rpc

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

    # Issue 28: the delete is deferred, not refused: withdrawn at once, the pid named.
    answer, call = stub.DeleteEnv.with_call(
        pb.DeleteEnvRequest(workflow_id="wf", node_id="node", version_id="v1"), timeout=60
    )
    assert answer.status == "DEFERRED"
    assert (HELD_BY_KEY, f"pid={pid}") in tuple(call.trailing_metadata())
    again = client.delete(KEY)  # the client reads the holders back from the metadata
    assert (again.status, again.held_by) == (uv_envs.DeleteStatus.DEFERRED, (pid,))
    assert environment.env_path.is_dir()
    status = rpc(
        stub.GetEnvStatus, pb.GetEnvStatusRequest(workflow_id="wf", node_id="node", version_id="v1")
    )
    assert status.status == "NOT_FOUND"  # withdrawn for every client
    assert json.loads(status.metadata_json)["status"] == "DELETING"
    with pytest.raises(uv_envs.EnvironmentNotFound):
        client.get(KEY)

    users.stop(pid)
    _wait_gone(environment.env_path)
    deletes = [r for r in client.operations("wf").items if r.operation == "delete"]
    # Newest first: the removal, then the two deferred deletes naming the pid.
    assert [r.metadata.get("completed", False) for r in deletes] == [True, False, False]
    assert [r.metadata["held_by_pids"] for r in deletes[1:]] == [[pid], [pid]]


def _wait_gone(path: Path, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while path.exists():
        assert time.monotonic() < deadline, f"{path} still there {within} s after its last user"
        time.sleep(0.05)


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

        deferred = api.delete(KEY)  # issue 28: deferred, not refused (it was 423)
        assert deferred.status is uv_envs.DeleteStatus.DEFERRED
        assert deferred.held_by == (pid,)
        again = httpx.delete(f"{server.url}/v1/envs/wf/node/v1", timeout=60)
        assert again.status_code == 200
        assert again.json()["status"] == "DEFERRED"
        assert again.json()["held_by"] == [pid]
        compat = httpx.delete(f"{server.url}/envs/wf/node?version_id=v1", timeout=60).json()
        assert (compat["status"], compat["deferred"], compat["held_by"]) == ("deleted", True, [pid])
        assert environment.env_path.is_dir()
        withdrawn = httpx.get(f"{server.url}/v1/envs/wf/node/v1", timeout=60).json()
        assert withdrawn["status"] == "DELETING"

        users.stop(pid)
        _wait_gone(environment.env_path)
        with pytest.raises(uv_envs.EnvironmentNotFound):
            api.get(KEY)


class NodeKeepsCopies:
    """A replication whose other machine keeps each deleted env's copy (in use there)."""

    def check_python(self, request: str) -> None:
        del request

    def changed(self, environment: uv_envs.Environment, project: uv_envs.Export) -> None:
        del environment, project

    def deleted(self, key: uv_envs.EnvKey, env_path: Path) -> tuple[str, ...]:
        del key, env_path
        return ("n1@10.0.0.2",)

    def close(self) -> None:
        pass


def test_a_delete_other_machines_defer_names_them_on_both_wires(
    tmp_path: Path,
    fake_uv: uv_envs.testing.FakeUvExecutor,
    serve: Serve,
    open_client: OpenClient,
    open_stub: OpenStub,
    http_serve: HttpServe,
) -> None:
    manager = uv_envs.EnvManager(
        uv_envs.Settings(root=tmp_path / "root", lock_timeout=5),
        executor=fake_uv,
        python_finder=uv_envs.testing.FakePythonFinder(),
        replication=NodeKeepsCopies(),
    )
    target = serve(manager)
    manager.create(KEY, packages=["alpha"])
    answer, call = open_stub(target).DeleteEnv.with_call(
        pb.DeleteEnvRequest(workflow_id="wf", node_id="node", version_id="v1"), timeout=60
    )
    assert answer.status == "DEFERRED"
    assert dict(call.trailing_metadata())[HELD_BY_KEY] == "node=n1@10.0.0.2"

    manager.create(KEY, packages=["alpha"])
    result = open_client(target, timeout=60).delete(KEY)
    assert (result.status, result.held_on, result.held_by) == ("DEFERRED", ("n1@10.0.0.2",), ())

    manager.create(KEY, packages=["alpha"])
    server = http_serve(manager)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        body = http.delete("/v1/envs/wf/node/v1").json()
    assert (body["status"], body["held_on"], body["held_by"]) == ("DEFERRED", ["n1@10.0.0.2"], [])
    manager.close()
