"""The HTTP API on a real uvicorn over loopback, with real uv on the test wheelhouse."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import httpx

import uv_envs
from uv_envs_server import HttpEnvClient

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator


def _imported(python: str, module: str) -> str:
    return subprocess.run(
        [python, "-c", f"import {module}; print({module}.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()


def _json(answer: httpx.Response) -> Any:  # noqa: ANN401 - the API's JSON
    assert answer.is_success, answer.text
    return answer.json()


@pytest.fixture
def api(http_serve: Callable[..., Any], manager: uv_envs.EnvManager) -> Iterator[HttpEnvClient]:
    server = http_serve(manager)
    with HttpEnvClient(server.url, timeout=300) as client:
        yield client


def test_the_whole_lifecycle_on_real_uv(  # noqa: PLR0915 - one lifecycle, step by step
    api: HttpEnvClient, manager: uv_envs.EnvManager
) -> None:
    http = api.http
    assert _json(http.get("/v1/health")) == {"status": "SERVING"}
    assert api.health() == "SERVING"

    created = http.post(
        "/v1/envs",
        json={"workflow_id": "wf", "node_id": "n", "version_id": "v1", "packages": ["alpha<2"]},
    )
    assert created.status_code == 201, created.text
    env = created.json()
    assert env["status"] == "READY"
    assert env["python_path"] == str(Path(env["env_path"]) / ".venv" / "bin" / "python")
    assert env["venv_path"] == str(Path(env["env_path"]) / ".venv")
    assert env["generation"] == 1
    assert env["spec"]["packages"] == ["alpha<2"]
    assert env["runtime_env"]["py_executable"] == env["python_path"]
    assert env["runtime_env"] == manager.get(uv_envs.EnvKey("wf", "n", "v1")).runtime_env()
    assert _imported(env["python_path"], "alpha") == "1.0"

    again = http.post(
        "/v1/envs",
        json={"workflow_id": "wf", "node_id": "n", "version_id": "v1", "packages": ["alpha<2"]},
    )
    assert again.status_code == 200
    assert again.json()["env_path"] == env["env_path"]
    other = http.post(
        "/v1/envs",
        json={"workflow_id": "wf", "node_id": "n", "version_id": "v1", "packages": ["gamma"]},
    )
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["error_class"] == "EnvironmentAlreadyExists"

    env_url = "/v1/envs/wf/n/v1"
    status = _json(http.get(env_url))
    assert status["status"] == "READY"
    assert status["has_uv_lock"]
    assert status["environment"]["env_path"] == env["env_path"]
    listed = _json(http.get("/v1/envs", params={"workflow_id": "wf"}))["environments"]
    assert [e["version_id"] for e in listed] == ["v1"]
    assert _json(http.get("/v1/envs", params={"workflow_id": "other"}))["environments"] == []

    deps = _json(http.get(f"{env_url}/deps"))
    assert deps == {"declared": ["alpha<2"], "locked": {"alpha": "1.0"}}
    added = _json(http.post(f"{env_url}/deps", json={"packages": ["beta"]}))
    assert added["status"] == "SUCCESS"
    assert added["environment"]["generation"] == 2
    assert _imported(env["python_path"], "beta") == "1.0"
    removed = _json(http.request("DELETE", f"{env_url}/deps", json={"packages": ["alpha<2"]}))
    assert "alpha<2" not in removed["environment"]["spec"]["packages"]
    updated = _json(http.patch(f"{env_url}/deps", json={"packages": []}))
    assert updated["status"] == "SUCCESS"
    assert _json(http.get(f"{env_url}/deps"))["locked"]["alpha"] == "2.0"  # beta wants alpha>=1.0
    assert updated["changed"] is True
    again = _json(http.patch(f"{env_url}/deps", json={"packages": []}))
    assert again["changed"] is False  # nothing newer: the same generation
    assert again["environment"]["generation"] == updated["environment"]["generation"]
    synced = _json(http.post(f"{env_url}/sync"))
    assert synced["operation"] == "sync"
    assert _json(http.post(f"{env_url}/verify"))["ok"] is True

    def exported(fmt: str) -> dict[str, str]:
        files: dict[str, str] = _json(http.get(f"{env_url}/export", params={"format": fmt}))[
            "files"
        ]
        return files

    project = exported("project")
    assert set(project) == {"pyproject.toml", "uv.lock"}
    assert "beta" in project["pyproject.toml"]
    requirements = exported("requirements.txt")
    assert "beta==1.0" in requirements["requirements.txt"]
    assert "pylock.toml" in exported("pylock.toml")
    sbom = json.loads(exported("cyclonedx")["sbom.cdx.json"])
    assert sbom["specVersion"] == "1.5"
    assert {c["name"] for c in sbom["components"]} == {"alpha", "beta"}
    digest = _json(http.get(env_url))["environment"]["digest"]
    assert digest.startswith("sha256:")
    assert _json(http.post(f"{env_url}/verify"))["digest"] == digest
    assert {"name": "uv-envs:env-digest", "value": digest} in sbom["metadata"]["properties"]
    bad_format = http.get("/v1/envs/wf/n/v1/export", params={"format": "wheel"})
    assert bad_format.status_code == 422

    page = api.operations("wf", "n", limit=3)
    assert page.total >= 6
    assert len(page.items) == 3
    assert {item.operation for item in api.operations("wf").items} >= {
        "create",
        "add",
        "sync",
    }

    assert _json(http.delete(env_url))["status"] == "DELETED"
    assert _json(http.delete(env_url))["status"] == "NOT_FOUND"
    assert http.get(env_url).status_code == 404
    with pytest.raises(uv_envs.EnvironmentNotFound):
        api.get(uv_envs.EnvKey("wf", "n", "v1"))
    assert not Path(env["env_path"]).exists()
    assert _json(http.post("/v1/cleanup", json={"idle_hours": 0}))["deleted"] == []
    assert api.delete_operations("wf").deleted_count >= 6


def test_ensure_env_returns_a_working_python_and_the_empty_version_is_at(
    api: HttpEnvClient, manager: uv_envs.EnvManager
) -> None:
    key = uv_envs.EnvKey("wf", "node")
    python = str(api.ensure(key, ["gamma"]).python_path)
    assert _imported(python, "gamma") == "1.0"
    assert python == str(manager.get(key).python_path)
    assert api.http.get("/v1/envs/wf/node/@").json()["version_id"] == ""
    # ensure moves the env to another spec; the same python_path follows.
    assert str(api.ensure(key, ["alpha<2"]).python_path) == python
    assert _imported(python, "alpha") == "1.0"


def test_uv_failures_carry_uvs_stderr(api: HttpEnvClient, manager: uv_envs.EnvManager) -> None:
    answer = api.http.post(
        "/v1/envs", json={"workflow_id": "wf", "node_id": "n", "packages": ["nosuch"]}
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["error_class"] == "ResolutionFailed"
    assert "nosuch" in problem["stderr"]
    assert problem["exit_code"] != 0
    assert problem["request_id"] == answer.headers["x-request-id"]
    assert not manager._core.services.layout.env_dir(uv_envs.EnvKey("wf", "n")).exists()

    api.ensure(uv_envs.EnvKey("wf", "n"), ["alpha>=2"])
    with pytest.raises(uv_envs.ResolutionFailed) as info:
        api.add(uv_envs.EnvKey("wf", "n"), ["delta"])  # delta wants alpha<2, the env has alpha
    assert "delta" in info.value.stderr or "alpha" in info.value.stderr
    assert api.dependencies(uv_envs.EnvKey("wf", "n")).declared == ("alpha>=2",)  # unchanged


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error_class"),
    [
        ("POST", "/v1/envs", {"workflow_id": "../x", "node_id": "n"}, 422, "InvalidIdentifier"),
        (
            "POST",
            "/v1/envs",
            {"workflow_id": "w", "node_id": "n", "pakages": []},
            422,
            "InvalidInput",
        ),
        (
            "POST",
            "/v1/envs",
            {"workflow_id": "w", "node_id": "n", "packages": ["-e ."]},
            422,
            "InvalidRequirement",
        ),
        (
            "POST",
            "/v1/envs",
            {"workflow_id": "w", "node_id": "n", "python_version": "abc"},
            422,
            "InvalidPythonVersion",
        ),
        ("GET", "/v1/envs/w/n/%2E%2E", None, 422, "InvalidIdentifier"),
        ("GET", "/v1/envs/w/n/v", None, 404, "EnvironmentNotFound"),
        ("POST", "/v1/envs/w/n/v/sync", None, 404, "EnvironmentNotFound"),
        ("POST", "/v1/cleanup", {}, 422, "InvalidInput"),
        ("GET", "/v1/operations?limit=0", None, 422, "InvalidInput"),
        ("GET", "/no/such/path", None, 404, None),
        ("PATCH", "/v1/health", None, 405, None),
    ],
)
def test_bad_requests_are_problems_and_change_nothing(
    api: HttpEnvClient,
    manager: uv_envs.EnvManager,
    method: str,
    path: str,
    body: dict[str, object] | None,
    status: int,
    error_class: str | None,
) -> None:
    answer = api.http.request(method, path, json=body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status
    assert problem.get("error_class") == error_class
    assert "Traceback" not in answer.text
    assert manager.list_environments() == []


def test_limits_on_body_size_and_package_count(
    http_serve: Callable[..., Any], manager: uv_envs.EnvManager
) -> None:
    server = http_serve(manager, max_message_bytes=1024, max_packages=2)
    with httpx.Client(base_url=server.url) as http:
        big = http.post(
            "/v1/envs", json={"workflow_id": "w", "node_id": "n", "packages": ["a" * 2000]}
        )
        assert big.status_code == 413
        assert big.json()["status"] == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while read
            yield b'{"workflow_id": "w", "node_id": "n", "packages": ["'
            yield b"a" * 2000
            yield b'"]}'

        streamed = http.post(
            "/v1/envs", content=chunks(), headers={"content-type": "application/json"}
        )
        assert streamed.status_code == 413
        many = http.post(
            "/v1/envs",
            json={"workflow_id": "w", "node_id": "n", "packages": ["alpha", "beta", "gamma"]},
        )
        assert many.status_code == 422
        assert "at most 2" in many.json()["detail"]
    assert manager.list_environments() == []


def test_request_ids_are_echoed_or_made(api: HttpEnvClient) -> None:
    mine = api.http.get("/v1/health", headers={"x-request-id": "my-id.1"})
    assert mine.headers["x-request-id"] == "my-id.1"
    bad = api.http.get("/v1/health", headers={"x-request-id": "no spaces allowed"})
    assert bad.headers["x-request-id"] != "no spaces allowed"
    assert len(bad.headers["x-request-id"]) == 32


def test_the_openapi_page_and_schema_are_served(api: HttpEnvClient) -> None:
    schema = api.http.get("/openapi.json").json()
    assert "/v1/envs/{workflow_id}/{node_id}/{version_id}/deps" in schema["paths"]
    assert schema["components"]["schemas"]["Problem"]
    assert "swagger" in api.http.get("/docs").text.lower()


def test_the_ray_runtime_env_is_carried(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager)
    with HttpEnvClient(server.url, timeout=30) as client:
        created = client.http.put("/v1/envs/wf/n/@", json={"packages": ["alpha"]}).json()
        env = client.http.get("/v1/envs/wf/n/@").json()["environment"]
    expected = {"py_executable": env["python_path"], "env_vars": {"VIRTUAL_ENV": env["venv_path"]}}
    assert created["ray_runtime_env"] == expected
    assert env["ray_runtime_env"] == expected
