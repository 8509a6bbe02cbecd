"""The whole lifecycle over the wire with real uv, against the test wheelhouse."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

import uv_envs_server
from uv_envs import testing
from uv_envs_server import EnvManagerClient, GrpcEnvironmentProvider

if TYPE_CHECKING:
    import uv_envs
    from tests.server.conftest import HttpServe, OpenClient, Serve
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
def client(serve: Serve, manager: uv_envs.EnvManager, open_client: OpenClient) -> EnvManagerClient:
    return open_client(serve(manager), timeout=300)


def test_full_lifecycle(client: EnvManagerClient) -> None:
    python = client.ensure_env("wf", "node", "v1", packages=["alpha"])
    assert _imported_version(python, "alpha") == "2.0"
    status = client.get_env_status("wf", "node", "v1")
    assert status.status == "READY"
    assert (status.has_pyproject, status.has_uv_lock, status.has_venv) == (True, True, True)
    assert python == f"{status.env_path}/.venv/bin/python"

    # Retried create: same answer, no rebuild (the generation stays).
    generation = client.get_env_status("wf", "node", "v1").metadata_json
    assert client.ensure_env("wf", "node", "v1", packages=["alpha"]) == python
    assert client.get_env_status("wf", "node", "v1").metadata_json == generation

    added = client.add_deps("wf", "node", "v1", packages=["delta"])  # delta needs alpha<2
    assert (added.status, added.exit_code) == ("SUCCESS", 0)
    deps = client.list_deps("wf", "node", "v1")
    assert dict(deps.locked_versions) == {"alpha": "1.0", "delta": "1.0"}
    assert _imported_version(python, "alpha") == "1.0"

    before = client.export_env("wf", "node", "v1")
    assert "delta" in before.pyproject_toml
    assert 'name = "alpha"' in before.uv_lock
    failed = client.add_deps("wf", "node", "v1", packages=["alpha>=3"])
    assert failed.status == "FAILED"
    assert failed.exit_code != 0
    assert "alpha" in failed.stderr
    after = client.export_env("wf", "node", "v1")
    assert (after.pyproject_toml, after.uv_lock) == (before.pyproject_toml, before.uv_lock)
    assert _imported_version(python, "alpha") == "1.0"

    removed = client.remove_deps("wf", "node", "v1", packages=["delta"])
    assert removed.status == "SUCCESS"
    updated = client.update_deps("wf", "node", "v1", packages=["alpha"])
    assert updated.status == "SUCCESS"
    assert dict(client.list_deps("wf", "node", "v1").locked_versions) == {"alpha": "2.0"}
    assert _imported_version(python, "alpha") == "2.0"

    synced = client.sync_env("wf", "node", "v1")
    assert (synced.status, synced.exit_code) == ("SUCCESS", 0)

    operations = client.get_operations("wf", "node")
    assert operations.total >= 6
    assert {item.status for item in operations.items} >= {"SUCCESS", "FAILED"}
    failed_ops = client.get_operations("wf", "node", status="FAILED")
    assert failed_ops.total >= 1
    assert failed_ops.items[0].exit_code != 0

    assert list(client.cleanup(idle_hours=1).deleted) == []
    assert client.delete_env("wf", "node", "v1") == "DELETED"
    assert client.delete_env("wf", "node", "v1") == "NOT_FOUND"
    assert client.get_env_status("wf", "node", "v1").status == "NOT_FOUND"


def test_requirements_file_over_the_wire(client: EnvManagerClient) -> None:
    python = client.ensure_env("wf", "req", requirements_text=b"beta\n# a comment\n")
    assert _imported_version(python, "beta") == "1.0"
    assert set(client.list_deps("wf", "req").locked_versions) == {"alpha", "beta"}


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
