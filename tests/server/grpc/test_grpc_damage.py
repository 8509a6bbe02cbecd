"""A damaged env over gRPC (issue 9): reported, deletable, and the server serves the rest.

WTB's contract fixes GetEnvStatus's status strings (CREATING, READY, FAILED,
NOT_FOUND), so an env with an unreadable record answers ``FAILED`` and says
why in ``metadata_json`` (``{"status": "UNREADABLE", "error": ...}``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

import uv_envs
from tests.support.server_process import Server, wheelhouse_env
from uv_envs_server import EnvManagerClient
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc

if TYPE_CHECKING:
    from tests.server.conftest import Serve

ERROR_CLASS = "uv-envs-error-class"

BAD_KEY = uv_envs.EnvKey("wf", "bad", "v1")
GOOD_KEY = uv_envs.EnvKey("wf", "good", "v1")
BAD = {"workflow_id": "wf", "node_id": "bad", "version_id": "v1"}
GOOD = {"workflow_id": "wf", "node_id": "good", "version_id": "v1"}


def _truncate(env_dir: Path) -> None:
    path = env_dir / "metadata.json"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_an_unreadable_env_over_grpc(serve: Serve, fake_manager: uv_envs.EnvManager) -> None:
    fake_manager.ensure(BAD_KEY, packages=["alpha"])
    good = fake_manager.ensure(GOOD_KEY, packages=["alpha"])
    _truncate(fake_manager._core.services.layout.env_dir(BAD_KEY))
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
            stub.CreateEnv(
                pb.CreateEnvRequest(
                    workflow_id="wf", node_id="bad", version_id="v1", packages=["alpha"]
                ),
                timeout=30,
            )
        assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "DeleteEnv" in (caught.value.details() or "")
        # str at run time for a non-binary key, whatever the stubs say.
        named = {
            str(m.value) for m in caught.value.trailing_metadata() or () if m.key == ERROR_CLASS
        }
        assert named == {"EnvironmentUnreadable"}

        assert stub.DeleteEnv(pb.DeleteEnvRequest(**BAD), timeout=30).status == "DELETED"
        again = stub.CreateEnv(
            pb.CreateEnvRequest(
                workflow_id="wf", node_id="bad", version_id="v1", packages=["alpha"]
            ),
            timeout=30,
        )
        assert again.status == "READY"


def test_the_python_client_raises_the_typed_error(
    serve: Serve, fake_manager: uv_envs.EnvManager
) -> None:
    fake_manager.ensure(BAD_KEY, packages=["alpha"])
    (fake_manager._core.services.layout.env_dir(BAD_KEY) / "metadata.json").write_text("{")
    with EnvManagerClient(serve(fake_manager), timeout=30) as client:
        with pytest.raises(uv_envs.EnvironmentUnreadable):
            client.ensure(BAD_KEY, ["alpha"])
        with pytest.raises(uv_envs.EnvironmentUnreadable):
            client.add(BAD_KEY, ["gamma"])


def test_the_server_starts_on_a_root_with_a_damaged_env_and_serves_the_rest(
    manager: uv_envs.EnvManager, wheelhouse: Path, uv_cache: Path
) -> None:
    manager.ensure(BAD_KEY, packages=["gamma"])
    good = manager.ensure(GOOD_KEY, packages=["gamma"])
    _truncate(manager._core.services.layout.env_dir(BAD_KEY))
    args = ["--port", "0", "--root", str(manager.settings.root)]
    server = Server(args, wheelhouse_env(wheelhouse, uv_cache))
    try:
        assert server.target, "the server did not start: " + (
            server.process.communicate(timeout=5)[1] or ""
        )
        with (
            EnvManagerClient(server.target, timeout=120) as client,
            grpc.insecure_channel(server.target) as channel,
        ):
            stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
            assert client.health() == "SERVING"
            assert stub.GetEnvStatus(pb.GetEnvStatusRequest(**GOOD), timeout=30).status == "READY"
            assert stub.GetEnvStatus(pb.GetEnvStatusRequest(**BAD), timeout=30).status == "FAILED"
            python = client.ensure(uv_envs.EnvKey("wf", "other"), ["gamma"]).python_path
            assert python.is_file()
            assert client.ensure(GOOD_KEY, ["gamma"]).python_path == good.python_path
    finally:
        returncode = server.stop()
    stderr = server.stderr
    assert returncode == 0, stderr
    assert "quarantined" in stderr
    assert "wf/bad/v1" in stderr
    assert "Traceback" not in stderr
    rows = manager.operations("wf", "bad", status="FAILED").items
    assert any(r.operation == "recover" and "truncated" in (r.error or "") for r in rows)
