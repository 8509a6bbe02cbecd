"""The HTTP server's guards and concurrency: token, TLS, loopback, disconnects, parallel calls."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import httpx

import uv_envs

# The gRPC cancel tests' executor: real uv whose `uv sync` waits for the cancel event.
from tests.server.grpc.test_grpc_cancel import HoldingExecutor, _settled
from uv_envs import EnvKey, EnvManager, EnvStatus
from uv_envs_server import (
    HttpEnvClient,
    HttpEnvironmentProvider,
    HttpRemoteError,
    RemoteAddressNotAllowed,
    ServeOptions,
    TlsFiles,
    create_http_server,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.server.conftest import GatedExecutor, SelfSigned
    from uv_envs._uv.commands import UvInvocation
    from uv_envs._uv.executor import UvResult
    from uv_envs._uv.python import PythonFinder

TOKEN = "s3cret-token"  # noqa: S105 - a test token for a loopback server
BODY = {"workflow_id": "wf", "node_id": "slow", "version_id": "v1", "packages": ["alpha"]}


def test_without_the_token_every_call_but_health_is_refused(
    http_serve: Callable[..., Any], fake_manager: EnvManager
) -> None:
    server = http_serve(fake_manager, token=TOKEN)
    with httpx.Client(base_url=server.url) as http:
        assert http.get("/v1/health").status_code == 200
        for path in ("/v1/envs", "/", "/v1/operations"):
            refused = http.get(path)
            assert refused.status_code == 401, path
            assert refused.headers["www-authenticate"] == "Bearer"
            assert refused.headers["content-type"] == "application/problem+json"
        wrong = http.post("/v1/envs", json=BODY, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        basic = http.get("/v1/envs", headers={"Authorization": f"Basic {TOKEN}"})
        assert basic.status_code == 401
    assert fake_manager.list_environments() == []
    with HttpEnvClient(server.url) as anonymous, pytest.raises(HttpRemoteError) as info:
        anonymous.get(uv_envs.EnvKey("wf", "n"))
    assert info.value.status_code == 401
    with HttpEnvClient(server.url, token=TOKEN) as client:
        assert client.ensure(uv_envs.EnvKey("wf", "n"), ["alpha"]).status == "READY"
        page = client.http.get("/")
        assert page.status_code == 200
        assert "wf/n/" in page.text


def test_bad_setups_are_refused_before_binding(fake_manager: EnvManager) -> None:
    with pytest.raises(RemoteAddressNotAllowed):
        ServeOptions(host="0.0.0.0")  # noqa: S104 - refused
    with pytest.raises(ValueError, match="printable ASCII"):
        ServeOptions(token="has space")  # noqa: S106 - bad on purpose
    with pytest.raises(ValueError, match="max_message_bytes"):
        ServeOptions(max_message_bytes=0)
    # Allowed, and then refused by the HTTP server itself: before binding.
    remote = ServeOptions(host="0.0.0.0", allow_remote=True)  # noqa: S104 - never bound
    with pytest.raises(ValueError, match="TLS"):
        create_http_server(fake_manager, attrs.evolve(remote, tls=TlsFiles("no.pem", "no.pem")))


def test_serves_https_with_a_certificate(
    http_serve: Callable[..., Any],
    fake_manager: EnvManager,
    self_signed: SelfSigned,
    tmp_path: Path,
) -> None:
    cert, key = self_signed()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert)
    key_file.write_bytes(key)
    server = http_serve(fake_manager, tls=TlsFiles(cert_file, key_file), token=TOKEN)
    assert server.url.startswith("https://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(cert_file))
    with HttpEnvClient(server.url, token=TOKEN, verify=context) as client:
        assert str(client.ensure(EnvKey("wf", "n"), ["alpha"]).python_path).endswith("/bin/python")
    with pytest.raises(httpx.TransportError):
        httpx.get(server.url.replace("https", "http") + "/v1/health", timeout=5)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError, match="TLS"):
        create_http_server(fake_manager, ServeOptions(tls=TlsFiles(bad, key_file)))


def test_status_is_answered_while_a_create_runs(
    http_serve: Callable[..., Any],
    gated_manager: Callable[..., tuple[EnvManager, GatedExecutor]],
) -> None:
    manager, gate = gated_manager()
    server = http_serve(manager, max_workers=4)
    answers: dict[str, httpx.Response] = {}

    def create() -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            answers["create"] = http.post("/v1/envs", json=BODY)

    creating = threading.Thread(target=create)
    creating.start()
    try:
        assert gate.entered.wait(30), "the create never reached uv"
        with HttpEnvClient(server.url, timeout=10) as client:
            assert client.health() == "SERVING"
            assert client.http.get("/v1/envs/wf/slow/v1").json()["status"] == "CREATING"
            listed = client.http.get("/v1/envs").json()["environments"]
            assert [e["status"] for e in listed] == ["CREATING"]
            assert "wf/slow/v1" in client.http.get("/").text
            assert "create" not in answers  # the create is still held in uv
    finally:
        gate.release.set()
        creating.join(60)
    assert answers["create"].status_code == 201
    assert manager.status(EnvKey("wf", "slow", "v1")).status is EnvStatus.READY


@pytest.fixture
def held(
    settings: uv_envs.Settings, python_finder: PythonFinder
) -> tuple[EnvManager, HoldingExecutor]:
    executor = HoldingExecutor()
    return EnvManager(settings, executor=executor, python_finder=python_finder), executor


def test_a_client_that_disconnects_mid_create_rolls_it_back(
    http_serve: Callable[..., Any], held: tuple[EnvManager, HoldingExecutor]
) -> None:
    manager, executor = held
    server = http_serve(manager, max_workers=4)
    body = json.dumps(BODY).encode()
    request = (
        f"POST /v1/envs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as client:
        client.sendall(request)
        assert executor.syncing.wait(60), "the create never reached uv sync"
    # The socket is closed: the server notices, sets the cancel event, uv stops.
    assert _settled(manager, EnvKey("wf", "slow", "v1")) is EnvStatus.NOT_FOUND
    assert executor.saw_cancel.is_set(), "uv was held until the end: the cancel never came"
    assert not manager._core.services.layout.env_dir(EnvKey("wf", "slow", "v1")).exists()
    record = manager.operations("wf", "slow").items[0]
    assert record.status == "FAILED"
    assert "cancel" in (record.error or "").lower()

    executor.armed = False  # the same create works afterwards
    with HttpEnvClient(server.url, timeout=120) as api:
        created = api.http.post("/v1/envs", json=BODY)
        assert created.status_code == 201, created.text
        assert created.json()["status"] == "READY"


def test_the_provider_defers_the_delete_of_a_leased_env(
    http_serve: Callable[..., Any],
    gated_manager: Callable[..., tuple[EnvManager, GatedExecutor]],
) -> None:
    manager, gate = gated_manager()
    gate.release.set()
    server = http_serve(manager, max_workers=4)
    provider = HttpEnvironmentProvider(server.url, timeout=30)
    try:
        provider.create_environment(
            "v", {"workflow_id": "wf", "node_id": "n", "packages": ["alpha"]}
        )
        # Issue 28: deferred (the env withdrawn), where it used to raise EnvironmentInUse.
        with manager.lease(EnvKey("wf", "n")):
            provider.cleanup_environment("v")
            assert manager.status(EnvKey("wf", "n")).status is uv_envs.EnvStatus.DELETING
        assert provider.get_runtime_env("v") is None  # the mapping is gone with the cleanup
    finally:
        provider.close()


class BrokenExecutor:
    """A uv executor with a bug: the server's own trouble, whose message names a server path."""

    def run(self, invocation: UvInvocation) -> UvResult:
        raise RuntimeError("boom in /srv/secret/path")


def test_a_server_bug_is_a_500_problem_without_details(
    http_serve: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from uv_envs.testing import FakePythonFinder

    manager = EnvManager(
        uv_envs.Settings(root=tmp_path / "broken"),
        executor=BrokenExecutor(),
        python_finder=FakePythonFinder(),
    )
    server = http_serve(manager)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answer = http.post("/v1/envs", json=BODY, headers={"x-request-id": "bug-1"})
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert (
        problem["detail"]
        == "internal error (RuntimeError); see the server log under request id bug-1"
    )
    assert "secret" not in answer.text
    assert "Traceback" not in answer.text
    assert "boom in /srv/secret/path" in caplog.text  # the details are in the server log
    assert manager.list_environments() == []
