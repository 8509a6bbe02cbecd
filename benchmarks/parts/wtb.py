"""WTB's own client of the gRPC door: the generated stub, one RPC per call.

The benchmarks that time WTB's flow (CreateEnv, then GetEnvStatus polls) call
the wire exactly as WTB does, so their figures stay comparable across client
changes; the Python client (``EnvManagerClient``) adds reads of its own.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import grpc

from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated.env_manager_pb2_grpc import EnvManagerServiceStub

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence


@contextlib.contextmanager
def stub(target: str) -> Iterator[EnvManagerServiceStub]:
    """WTB's stub on a plaintext channel to ``target``, closed at the end."""
    with grpc.insecure_channel(target) as channel:
        yield EnvManagerServiceStub(channel)


def create_env(
    wtb: EnvManagerServiceStub,
    workflow_id: str,
    node_id: str,
    packages: Sequence[str],
    *,
    python: str = "",
    timeout: float,
) -> str:
    """CreateEnv; returns the env's path as WTB reads it (a failure raises ``grpc.RpcError``)."""
    request = pb.CreateEnvRequest(
        workflow_id=workflow_id, node_id=node_id, packages=list(packages), python_version=python
    )
    env_path: str = wtb.CreateEnv(request, timeout=timeout).env_path
    return env_path


def env_status(wtb: EnvManagerServiceStub, workflow_id: str, node_id: str) -> str:
    """GetEnvStatus's status string: CREATING, READY, FAILED or NOT_FOUND."""
    request = pb.GetEnvStatusRequest(workflow_id=workflow_id, node_id=node_id)
    status: str = wtb.GetEnvStatus(request, timeout=30).status
    return status
