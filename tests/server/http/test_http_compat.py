"""The original service's HTTP API (``/envs``) on a real uvicorn over loopback.

A client written from the contract (tests/support/original_api.py) drives every
route with form and multipart bodies: first on real uv against the test
wheelhouse (``ensure_env`` hands out an interpreter that imports what was
asked), then on the fake uv for each error code of the contract, each of which
must leave the envs as they were.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import httpx

import uv_envs
from tests.server.test_one_core_call import CountingManager
from tests.support.original_api import OriginalApiClient
from uv_envs.testing import FakePythonFinder, FakeUvExecutor, InMemoryAuditLog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from tests.server.conftest import HttpServe
    from uv_envs_server import HttpServer

WF = "wf-compat"
TOKEN = "s3cret-token-for-tests"  # noqa: S105 - a test token for a loopback server


def _imports(python: str, module: str) -> str:
    return subprocess.run(
        [python, "-c", f"import {module}; print({module}.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()


def _is_iso(text: str) -> bool:
    return dt.datetime.fromisoformat(text).tzinfo is not None


class Seen:
    """The method, path and status of every answer a client got, in order."""

    def __init__(self, client: OriginalApiClient) -> None:
        self.answers: list[tuple[str, str, int]] = []
        client.http.event_hooks["response"].append(self._record)

    def _record(self, response: httpx.Response) -> None:
        request = response.request
        self.answers.append((request.method, request.url.path, response.status_code))

    def take(self) -> list[tuple[str, str, int]]:
        taken, self.answers = self.answers, []
        return taken


@pytest.fixture
def real(http_serve: HttpServe, manager: uv_envs.EnvManager) -> Iterator[OriginalApiClient]:
    with OriginalApiClient(http_serve(manager).url) as client:
        yield client


def test_ensure_env_creates_on_404_and_hands_out_a_working_interpreter(
    real: OriginalApiClient,
) -> None:
    seen = Seen(real)
    python = real.ensure_env(WF, "node-a", packages=["alpha<2", "gamma"])
    assert seen.take() == [("GET", f"/envs/{WF}/node-a", 404), ("POST", "/envs", 200)]
    assert Path(python).is_file()
    assert _imports(python, "alpha") == "1.0"
    assert _imports(python, "gamma") == "1.0"

    assert real.ensure_env(WF, "node-a", packages=["alpha<2", "gamma"]) == python
    assert seen.take() == [("GET", f"/envs/{WF}/node-a", 200)]  # no second create
    status = real.get_status(WF, "node-a")
    assert status["status"] == "ACTIVE"
    assert status["version_id"] is None
    assert str(Path(status["env_path"]) / ".venv" / "bin" / "python") == python
    assert status["has_pyproject"]
    assert status["has_uv_lock"]
    assert status["has_venv"]
    assert status["metadata"]["env_id"] == f"{WF}_node-a"
    assert _is_iso(status["metadata"]["created_at"])
    assert _is_iso(status["metadata"]["last_used_at"])


def test_a_damaged_env_is_404_so_ensure_env_rebuilds_it(
    real: OriginalApiClient, manager: uv_envs.EnvManager
) -> None:
    python = real.ensure_env(WF, "node-f", packages=["alpha<2"])
    key = uv_envs.EnvKey(WF, "node-f")
    venv = manager.get(key).venv_path.resolve()
    module = next(venv.glob("lib/python*/site-packages/alpha/__init__.py"))
    module.chmod(0o644)
    module.write_text("raise ImportError('tampered')\n")
    assert not manager.verify(key).ok  # now DAMAGED

    seen = Seen(real)
    with pytest.raises(httpx.HTTPStatusError) as damaged:
        real.get_status(WF, "node-f")
    assert damaged.value.response.json()["code"] == "ENV_NOT_FOUND"
    assert "DAMAGED" in damaged.value.response.json()["message"]
    assert real.ensure_env(WF, "node-f", packages=["alpha<2"]) == python
    assert seen.take()[1:] == [("GET", f"/envs/{WF}/node-f", 404), ("POST", "/envs", 200)]
    assert manager.status(key).status is uv_envs.EnvStatus.READY
    assert _imports(python, "alpha") == "1.0"


def test_a_status_answer_counts_as_a_use_for_idle_cleanup(
    fake: OriginalApiClient, fake_manager: uv_envs.EnvManager
) -> None:
    fake.create_env(WF, "used", packages=["alpha"])
    key = uv_envs.EnvKey(WF, "used")
    before = fake_manager.usage(key).last_used
    time.sleep(0.05)
    fake.get_status(WF, "used")
    assert fake_manager.usage(key).last_used > before


def test_every_dependency_route_with_form_and_multipart_bodies(real: OriginalApiClient) -> None:
    created = real.create_env(WF, "node-b", version_id="v1", packages=["alpha<2"])
    assert created["status"] == "created"
    assert created["version_id"] == "v1"
    assert created["python_version"]
    assert "alpha<2" in created["pyproject_toml"]
    python = str(Path(created["env_path"]) / ".venv" / "bin" / "python")
    again = real.create_env(WF, "node-b", version_id="v1", packages=["alpha<2"])
    assert again == created  # the same spec answers the same

    added = real.add_packages(WF, "node-b", ["beta"], version_id="v1")
    assert added == {"workflow_id": WF, "node_id": "node-b", "version_id": "v1", "status": "added"}
    assert _imports(python, "beta") == "1.0"
    listed = real.list_packages(WF, "node-b", version_id="v1")
    assert listed["dependencies"] == ["alpha<2", "beta>=1.0"]  # as uv add declares it
    assert listed["locked_versions"] == {"alpha": "1.0", "beta": "1.0"}

    # Multipart: an uploaded requirements file, its comments and blank lines skipped.
    upload = b"# pinned by the team\n\ngamma  # for the report\n"
    assert real.add_packages(WF, "node-b", None, "v1", upload)["status"] == "added"
    assert _imports(python, "gamma") == "1.0"
    updated = real.update_packages(WF, "node-b", ["alpha>=2"], version_id="v1")
    assert updated["status"] == "updated"
    assert real.list_packages(WF, "node-b", "v1")["locked_versions"]["alpha"] == "2.0"
    removed = real.remove_packages(WF, "node-b", None, "v1", b"gamma\n")
    assert removed["status"] == "removed"
    assert removed["packages_installed"] == ["alpha>=2", "beta>=1.0"]
    synced = real.sync_env(WF, "node-b", version_id="v1")
    assert synced["status"] == "synced"
    assert synced["packages_installed"] == ["alpha>=2", "beta>=1.0"]
    assert _imports(python, "alpha") == "2.0"

    exported = real.export_env(WF, "node-b", version_id="v1")
    assert 'name = "alpha"' in exported["uv_lock"]
    assert "beta" in exported["pyproject_toml"]

    # One form value written "a,b" names two packages.
    one_field = real.create_env(WF, "node-c", packages="alpha<2,gamma")
    assert one_field["version_id"] is None
    assert real.list_packages(WF, "node-c")["dependencies"] == ["alpha<2", "gamma"]


def test_history_cleanup_and_delete(real: OriginalApiClient) -> None:
    real.create_env(WF, "node-d", packages=["alpha<2"])
    real.create_env(WF, "node-e", packages=["gamma"])

    history = real.history(WF)
    assert history["total"] == 2
    item = history["items"][0]
    assert set(item) == {
        "id",
        "workflow_id",
        "node_id",
        "operation",
        "status",
        "stdout",
        "stderr",
        "exit_code",
        "duration_ms",
        "metadata",
        "created_at",
    }
    assert item["operation"] == "create"
    assert item["status"] == "SUCCESS"
    assert _is_iso(item["created_at"])
    assert [i["node_id"] for i in real.history(WF, node_id="node-d")["items"]] == ["node-d"]
    assert real.history(WF, status="FAILED")["total"] == 0
    assert len(real.history(WF, limit=1, offset=1)["items"]) == 1

    cleaned = real.cleanup(1)
    assert cleaned["deleted"] == []  # both were used just now
    assert _is_iso(cleaned["checked_at"])

    deleted = real.delete_env(WF, "node-d")
    assert deleted == {
        "workflow_id": WF,
        "node_id": "node-d",
        "version_id": "",
        "status": "deleted",
    }
    assert real.delete_env(WF, "node-d") == deleted  # also for an env that is gone
    with pytest.raises(httpx.HTTPStatusError) as gone:
        real.get_status(WF, "node-d")
    assert gone.value.response.status_code == 404

    one = real.delete_history(WF, node_id="node-e")
    assert one == {"workflow_id": WF, "deleted_count": 1, "node_id": "node-e"}
    rest = real.delete_history(WF)  # node-d: its create and its delete
    assert rest == {"workflow_id": WF, "deleted_count": 2, "deleted_node_ids": ["node-d"]}


# --- every error code, on the fake uv ----------------------------------------------------


class StartFails(InMemoryAuditLog):
    """An audit log whose database is away: no operation can start its record."""

    def start(
        self, key: uv_envs.EnvKey, operation: str, metadata: Mapping[str, Any] | None = None
    ) -> int:
        raise uv_envs.AuditUnavailable(
            "audit database postgresql://u@db.internal.example:5432/audit unreachable"
        )


@pytest.fixture
def fake_server(http_serve: HttpServe, fake_manager: uv_envs.EnvManager) -> HttpServer:
    return http_serve(fake_manager)


@pytest.fixture
def fake(fake_server: HttpServer) -> Iterator[OriginalApiClient]:
    with OriginalApiClient(fake_server.url, timeout=30) as client:
        yield client


def _error(response: httpx.Response) -> tuple[int, str]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "message"}
    assert body["message"]
    return response.status_code, body["code"]


def _snapshot(manager: uv_envs.EnvManager) -> list[tuple[str, int, str]]:
    return [(str(e.key), e.generation, e.spec_hash) for e in manager.list_environments()]


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/envs", {"data": {"workflow_id": WF}}),  # node_id missing
        ("POST", "/envs", {"json": {"workflow_id": WF, "node_id": "n", "packages": ["alpha"]}}),
        ("POST", "/envs", {"data": {"workflow_id": WF, "node_id": "n", "packages": "al pha!"}}),
        ("POST", "/envs", {"data": {"workflow_id": "w f", "node_id": "n"}}),
        ("POST", f"/envs/{WF}/keep/deps", {"data": {}}),  # no packages named
        ("POST", f"/envs/{WF}/keep/deps", {"json": {"packages": ["beta"]}}),
        ("PUT", f"/envs/{WF}/keep/deps", {"files": {"requirements_file": ("r.txt", b"\xff\xfe")}}),
        ("DELETE", f"/envs/{WF}/keep/deps", {"data": {"packages": "x y z"}}),
        # A requirements file may not point at other files or indexes.
        ("POST", f"/envs/{WF}/keep/deps", {"files": {"requirements_file": ("r", b"-r /etc/x\n")}}),
        ("POST", f"/envs/{WF}/keep/deps", {"data": {"packages": "alpha @ file:///etc"}}),
        ("GET", f"/envs/{WF}/keep", {"params": {"version_id": "../up"}}),
        ("POST", "/envs/cleanup", {"json": {"idle_hours": 0}}),
        ("POST", "/envs/cleanup", {"data": {"idle_hours": "5"}}),
        ("GET", f"/envs-history/{WF}", {"params": {"limit": 0}}),
        ("GET", f"/envs-history/{WF}", {"params": {"status": "DONE"}}),
    ],
)
def test_bad_input_is_400_invalid_packages_and_changes_nothing(
    fake: OriginalApiClient,
    fake_manager: uv_envs.EnvManager,
    method: str,
    path: str,
    kwargs: dict[str, Any],
) -> None:
    fake.create_env(WF, "keep", packages=["alpha"])
    before = _snapshot(fake_manager)
    assert _error(fake.http.request(method, path, **kwargs)) == (400, "INVALID_PACKAGES")
    assert _snapshot(fake_manager) == before


def test_each_failure_answers_its_code_and_leaves_the_env_as_it_was(
    fake: OriginalApiClient, fake_manager: uv_envs.EnvManager, fake_uv: FakeUvExecutor
) -> None:
    http = fake.http
    assert _error(http.get(f"/envs/{WF}/none")) == (404, "ENV_NOT_FOUND")
    assert _error(http.post(f"/envs/{WF}/none/deps", data={"packages": "beta"})) == (
        404,
        "ENV_NOT_FOUND",
    )
    unresolvable = http.post("/envs", data={"workflow_id": WF, "node_id": "n", "packages": "nope"})
    assert _error(unresolvable) == (422, "PACKAGE_RESOLUTION_FAILED")
    assert fake_manager.list_environments() == []

    fake.create_env(WF, "keep", packages=["alpha"])
    before = _snapshot(fake_manager)
    fake_uv.fail_next("add", "error: the disk said no")
    failed = http.post(f"/envs/{WF}/keep/deps", data={"packages": "beta"})
    assert _error(failed) == (500, "UV_EXECUTION_ERROR")
    assert "the disk said no" in failed.json()["message"]
    assert _snapshot(fake_manager) == before

    run = http.post(f"/envs/{WF}/keep/run", json={"code": "print(1)"})
    assert _error(run) == (501, "NOT_IMPLEMENTED")
    assert "Ray" in run.json()["message"]

    # Issue 28: a delete of a leased env is deferred (withdrawn), no longer 423 ENV_LOCKED.
    with fake_manager.lease(uv_envs.EnvKey(WF, "keep")):
        deferred = http.delete(f"/envs/{WF}/keep")
        assert deferred.status_code == 200
        assert (deferred.json()["status"], deferred.json()["deferred"]) == ("deleted", True)
        assert _error(http.get(f"/envs/{WF}/keep")) == (404, "ENV_NOT_FOUND")  # withdrawn


def test_an_unreachable_audit_database_is_500_db_audit_error(
    http_serve: HttpServe, tmp_path: Path, fake_uv: FakeUvExecutor
) -> None:
    manager = uv_envs.EnvManager(
        uv_envs.Settings(root=tmp_path / "root", lock_timeout=5),
        executor=fake_uv,
        python_finder=FakePythonFinder(),
        audit=StartFails(),
    )
    with OriginalApiClient(http_serve(manager).url, timeout=30) as client:
        answer = client.http.post("/envs", data={"workflow_id": WF, "node_id": "n"})
    assert _error(answer) == (500, "DB_AUDIT_ERROR")
    assert "nothing was changed" in answer.json()["message"]
    assert "db.internal.example" not in answer.text
    assert manager.list_environments() == []


def test_a_served_clusters_head_away_is_503_cluster_unavailable() -> None:
    from uv_envs_server._http.compat.errors import compat_error

    exc = uv_envs.RayClusterUnavailable("the Ray cluster at 10.0.0.7:6379 does not answer")
    answer = compat_error(exc, "req-1")
    body = json.loads(bytes(answer.body))
    assert (answer.status_code, body["code"]) == (503, "CLUSTER_UNAVAILABLE")
    assert "10.0.0.7:6379" in body["message"]
    # An audit database away keeps the original service's own answer.
    assert compat_error(uv_envs.AuditUnavailable("down"), None).status_code == 500


def test_the_token_guards_these_routes_too(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager, token=TOKEN)
    with OriginalApiClient(server.url, timeout=30) as anonymous:
        assert anonymous.http.get(f"/envs/{WF}/n").status_code == 401
        assert (
            anonymous.http.post("/envs", data={"workflow_id": WF, "node_id": "n"}).status_code
            == 401
        )
    assert fake_manager.list_environments() == []
    with OriginalApiClient(server.url, token=TOKEN, timeout=30) as client:
        assert client.ensure_env(WF, "n", packages=["alpha"]).endswith("/.venv/bin/python")


# --- /v1 beside them ---------------------------------------------------------------------


@pytest.mark.parametrize("word", ["deps", "sync", "export", "run", "verify"])
def test_a_legacy_path_under_v1_never_reaches_the_env_of_that_version(
    fake_server: HttpServer, fake_manager: uv_envs.EnvManager, word: str
) -> None:
    key = uv_envs.EnvKey(WF, "n", word)
    fake_manager.create(key, packages=["alpha"])
    with httpx.Client(base_url=fake_server.url, timeout=30) as http:
        for method in ("GET", "DELETE", "PUT"):
            answer = http.request(method, f"/v1/envs/{WF}/n/{word}", data={"packages": "beta"})
            assert answer.status_code == 422, answer.text
            assert answer.json()["error_class"] == "InvalidIdentifier"
            assert f"?version_id={word}" in answer.json()["detail"]
        # The env is there, untouched, and the original API reaches it by its query parameter.
        assert fake_manager.get(key).generation == 1
        status = http.get(f"/envs/{WF}/n", params={"version_id": word})
        assert status.json()["version_id"] == word


def test_the_openapi_document_lists_them_under_their_tag_with_their_errors(
    fake_server: HttpServer,
) -> None:
    schema = httpx.get(f"{fake_server.url}/openapi.json", timeout=30).json()
    compat = {
        (path, method): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if "original service API" in operation["tags"]
    }
    assert len(compat) == 13
    assert all(path.startswith("/envs") for path, _ in compat)
    error = {"$ref": "#/components/schemas/CompatError"}
    for (path, _method), operation in compat.items():
        responses = operation["responses"]
        if path.endswith("/run"):
            assert set(responses) == {"501", "401", "405", "413"}
            continue
        for status in ("400", "404", "422", "423", "500"):
            assert responses[status]["content"]["application/json"]["schema"] == error
        assert "409" not in responses
    create = compat["/envs", "post"]["requestBody"]["content"]
    assert "multipart/form-data" in create
    # /v1 keeps its problem bodies.
    v1 = schema["paths"]["/v1/envs"]["post"]["responses"]["409"]["content"]
    assert "application/problem+json" in v1


def test_each_route_makes_the_core_calls_of_its_v1_twin(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    counting = CountingManager(fake_manager)
    with OriginalApiClient(http_serve(counting).url, timeout=30) as client:
        steps: list[tuple[Callable[[], object], dict[str, int]]] = [
            (lambda: client.create_env(WF, "n", packages=["alpha"]), {"provision": 1}),
            # Its status, and a hand-out for idle cleanup (runtime_env): the client runs it next.
            (lambda: client.get_status(WF, "n"), {"status": 1, "runtime_env": 1}),
            (lambda: client.http.get(f"/envs/{WF}/none"), {"status": 1}),
            (lambda: client.add_packages(WF, "n", ["beta"]), {"add": 1}),
            (lambda: client.update_packages(WF, "n", ["alpha"]), {"update": 1}),
            (lambda: client.remove_packages(WF, "n", ["beta"]), {"remove": 1}),
            (lambda: client.list_packages(WF, "n"), {"dependencies": 1}),
            (lambda: client.sync_env(WF, "n"), {"sync": 1}),
            (lambda: client.export_env(WF, "n"), {"export": 1}),
            (lambda: client.cleanup(1), {"cleanup": 1}),
            (lambda: client.history(WF), {"operations": 1}),
            (lambda: client.delete_history(WF), {"delete_operations": 1}),
            (lambda: client.delete_env(WF, "n"), {"delete": 1}),
        ]
        for step, calls in steps:
            step()
            assert counting.take() == calls


def test_a_body_that_cannot_be_parsed_is_400_invalid_packages(fake: OriginalApiClient) -> None:
    broken = b"--b0undary\r\nFalse--b0undary--\r\n"  # no part headers: not multipart at all
    answer = fake.http.post(
        "/envs", content=broken, headers={"Content-Type": "multipart/form-data; boundary=b0undary"}
    )
    assert _error(answer) == (400, "INVALID_PACKAGES")
