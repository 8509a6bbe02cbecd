"""gRPC errors in the contract's words: its field names and units, sentences not regexes."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest

from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc

if TYPE_CHECKING:
    import uv_envs
    from tests.server.conftest import Serve


@pytest.mark.parametrize(
    ("rpc", "request_", "words"),
    [
        ("Cleanup", pb.CleanupRequest(idle_hours=-1), "idle_hours must be 0 or more, not -1"),
        (
            "CreateEnv",
            pb.CreateEnvRequest(workflow_id="wf", node_id="n/x"),
            "may only contain letters, digits",
        ),
        (
            "CreateEnv",
            pb.CreateEnvRequest(workflow_id="wf", node_id="n", python_version="2.7"),
            "environments run CPython 3",
        ),
    ],
)
def test_refusals_use_the_contracts_words(
    serve: Serve, fake_manager: uv_envs.EnvManager, rpc: str, request_: object, words: str
) -> None:
    with grpc.insecure_channel(serve(fake_manager)) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            getattr(stub, rpc)(request_, timeout=30)
    error = caught.value
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    details = error.details() or ""
    assert words in details
    assert "seconds" not in details
    assert "[A-Za-z" not in details
