"""The whole lifecycle over the wire with real uv, against the test wheelhouse."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

import uv_envs
import uv_envs_server
from tests.server.conftest import rpc
from uv_envs import testing
from uv_envs_server import EnvManagerClient, GrpcEnvironmentProvider
from uv_envs_server._generated import env_manager_pb2 as pb

if TYPE_CHECKING:
    from tests.server.conftest import HttpServe, OpenClient, OpenStub, Serve
    from uv_envs_server import HttpEnvironmentProvider


def _imported_version(python: str, module: str) -> str:
    return subprocess.run(
        [python, "-c", f"import {module}; print({module}.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()


@pytest.fixture
def target(serve: Serve, manager: uv_envs.EnvManager) -> str:
    return serve(manager)


@pytest.fixture
def client(target: str, open_client: OpenClient) -> EnvManagerClient:
    return open_client(target, timeout=300)


def test_full_lifecycle(client: EnvManagerClient, target: str, open_stub: OpenStub) -> None:
    key = uv_envs.EnvKey("wf", "node", "v1")
    stub, ident = open_stub(target), {"workflow_id": "wf", "node_id": "node", "version_id": "v1"}
    python = str(client.ensure(key, ["alpha"]).python_path)
    assert _imported_version(python, "alpha") == "2.0"
    status = rpc(stub.GetEnvStatus, pb.GetEnvStatusRequest(**ident))
    assert status.status == "READY"
    assert (status.has_pyproject, status.has_uv_lock, status.has_venv) == (True, True, True)
    assert python == f"{status.env_path}/.venv/bin/python"

    # Retried create: same answer, no rebuild (the generation stays).
    generation = client.get(key)
    assert str(client.ensure(key, ["alpha"]).python_path) == python
    assert client.get(key) == generation

    added = client.add(key, ["delta"])  # delta needs alpha<2
    assert (added.operation, added.exit_code) == ("add", 0)
    deps = client.dependencies(key)
    assert deps.locked == {"alpha": "1.0", "delta": "1.0"}
    assert _imported_version(python, "alpha") == "1.0"

    before = client.export(key)
    assert "delta" in before.pyproject_toml
    assert 'name = "alpha"' in before.uv_lock
    with pytest.raises(uv_envs.UvError) as failed:  # AddDeps answered status FAILED
        client.add(key, ["alpha>=3"])
    assert failed.value.exit_code != 0
    assert "alpha" in failed.value.stderr
    after = client.export(key)
    assert (after.pyproject_toml, after.uv_lock) == (before.pyproject_toml, before.uv_lock)
    assert _imported_version(python, "alpha") == "1.0"

    removed = client.remove(key, ["delta"])
    assert removed.exit_code == 0
    updated = client.update(key, ["alpha"])
    assert updated.exit_code == 0
    assert client.dependencies(key).locked == {"alpha": "2.0"}
    assert _imported_version(python, "alpha") == "2.0"

    synced = client.sync(key)
    assert (synced.operation, synced.exit_code) == ("sync", 0)

    operations = client.operations("wf", "node")
    assert operations.total >= 6
    assert {item.status for item in operations.items} >= {"SUCCESS", "FAILED"}
    failed_ops = client.operations("wf", "node", status="FAILED")
    assert failed_ops.total >= 1
    assert failed_ops.items[0].exit_code != 0

    assert list(rpc(stub.Cleanup, pb.CleanupRequest(idle_hours=1)).deleted) == []
    assert client.delete(key).status is uv_envs.DeleteStatus.DELETED
    assert client.delete(key).status is uv_envs.DeleteStatus.NOT_FOUND
    assert rpc(stub.GetEnvStatus, pb.GetEnvStatusRequest(**ident)).status == "NOT_FOUND"


def test_requirements_file_over_the_wire(client: EnvManagerClient) -> None:
    key = uv_envs.EnvKey("wf", "req")
    python = str(client.ensure(key, requirements_text="beta\n# a comment\n").python_path)
    assert _imported_version(python, "beta") == "1.0"
    assert set(client.dependencies(key).locked) == {"alpha", "beta"}


@pytest.mark.parametrize("kind", ["grpc", "http"])
def test_remote_provider_contract_with_real_uv(
    kind: str, serve: Serve, http_serve: HttpServe, manager: uv_envs.EnvManager
) -> None:
    provider: GrpcEnvironmentProvider | HttpEnvironmentProvider
    if kind == "http":
        pytest.importorskip("fastapi", reason="the HTTP provider needs the [http] extra")
        provider = uv_envs_server.HttpEnvironmentProvider(http_serve(manager).url, timeout=300)
    else:
        provider = GrpcEnvironmentProvider(serve(manager), timeout=300)
    try:
        testing.check_provider_contract(
            provider, {"workflow_id": "wf", "node_id": "contract", "packages": ["gamma"]}
        )
    finally:
        provider.close()
