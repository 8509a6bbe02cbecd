"""A damaged env over gRPC (issue 9): reported, deletable, and the server serves the rest.

WTB's contract fixes GetEnvStatus's status strings (CREATING, READY, FAILED,
NOT_FOUND), so an env with an unreadable record answers ``FAILED`` and says
why in ``metadata_json`` (``{"status": "UNREADABLE", "error": ...}``).
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import grpc
import pytest

import uv_envs
from uv_envs_server import EnvManagerClient
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc

from .test_grpc_cli import Server, server_env  # noqa: F401 - the fixture is used by name

BAD = {"workflow_id": "wf", "node_id": "bad", "version_id": "v1"}
GOOD = {"workflow_id": "wf", "node_id": "good", "version_id": "v1"}


def _truncate(env_dir: Path) -> None:
    path = env_dir / "metadata.json"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_an_unreadable_env_over_grpc(serve: Any, fake_manager: uv_envs.EnvManager) -> None:
    fake_manager.ensure(uv_envs.EnvKey(**BAD), packages=["alpha"])
    good = fake_manager.ensure(uv_envs.EnvKey(**GOOD), packages=["alpha"])
    _truncate(fake_manager.layout.env_dir(uv_envs.EnvKey(**BAD)))
    with grpc.insecure_channel(serve(fake_manager)) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        status = stub.GetEnvStatus(pb.GetEnvStatusRequest(**BAD), timeout=30)
        assert status.status == "FAILED"
        detail = json.loads(status.metadata_json)
        assert detail["status"] == "UNREADABLE"
        assert "truncated" in detail["error"]
        ok = stub.GetEnvStatus(pb.GetEnvStatusRequest(**GOOD), timeout=30)
        assert (ok.status, ok.env_path) == ("READY", str(good.env_path))

        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateEnv(pb.CreateEnvRequest(**BAD, packages=["alpha"]), timeout=30)
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "DeleteEnv" in (caught.value.details() or "")
        trailing = dict(caught.value.trailing_metadata() or ())
        assert trailing["uv-envs-error-class"] == "EnvironmentUnreadable"

        assert stub.DeleteEnv(pb.DeleteEnvRequest(**BAD), timeout=30).status == "DELETED"
        again = stub.CreateEnv(pb.CreateEnvRequest(**BAD, packages=["alpha"]), timeout=30)
        assert again.status == "READY"


def test_the_python_client_raises_the_typed_error(
    serve: Any, fake_manager: uv_envs.EnvManager
) -> None:
    fake_manager.ensure(uv_envs.EnvKey(**BAD), packages=["alpha"])
    (fake_manager.layout.env_dir(uv_envs.EnvKey(**BAD)) / "metadata.json").write_text("{")
    with EnvManagerClient(serve(fake_manager), timeout=30) as client:
        with pytest.raises(uv_envs.EnvironmentUnreadable):
            client.ensure_env("wf", "bad", "v1", packages=["alpha"])
        with pytest.raises(uv_envs.EnvironmentUnreadable):
            client.add_deps("wf", "bad", "v1", packages=["gamma"])


def test_the_server_starts_on_a_root_with_a_damaged_env_and_serves_the_rest(
    tmp_path: Path, server_env: dict[str, str], manager: uv_envs.EnvManager  # noqa: F811
) -> None:
    manager.ensure(uv_envs.EnvKey(**BAD), packages=["gamma"])
    good = manager.ensure(uv_envs.EnvKey(**GOOD), packages=["gamma"])
    _truncate(manager.layout.env_dir(uv_envs.EnvKey(**BAD)))
    server = Server(["--port", "0", "--root", str(manager.settings.root)], server_env)
    try:
        assert server.target, "the server did not start"
        with EnvManagerClient(server.target, timeout=120) as client:
            assert client.health() == "SERVING"
            assert client.get_env_status(**GOOD).status == "READY"
            assert client.get_env_status(**BAD).status == "FAILED"
            python = client.ensure_env("wf", "other", packages=["gamma"])
            assert Path(python).is_file()
            assert client.ensure_env(**GOOD, packages=["gamma"]) == str(good.python_path)
    finally:
        assert server.stop(signal.SIGTERM) == 0
    assert "quarantined" in server.stderr
    assert "wf/bad/v1" in server.stderr
    assert "Traceback" not in server.stderr
    rows = manager.operations("wf", "bad", status="FAILED").items
    assert any(r.operation == "recover" and "truncated" in (r.error or "") for r in rows)
