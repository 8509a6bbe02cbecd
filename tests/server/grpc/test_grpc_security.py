"""Server hardening: loopback by default, TLS, the bearer token, size limits, request ids.

Every server here listens on 127.0.0.1; non-loopback addresses are only ever
refused, never bound.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

import uv_envs
from uv_envs import testing
from uv_envs_server import (
    DEFAULT_MAX_MESSAGE_BYTES,
    REQUEST_ID_KEY,
    EnvManagerClient,
    GrpcEnvironmentProvider,
    RemoteAddressNotAllowed,
    RemoteError,
    ServeOptions,
    TlsFiles,
    create_server,
)
from uv_envs_server._cli import main
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc
from uv_envs_server._grpc.errors import ERROR_CLASS_KEY
from uv_envs_server._security import check_address, is_loopback

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.server.conftest import Ident, OpenClient, SelfSigned, Serve

from tests.server.conftest import tls_files

IDENT: Ident = {"workflow_id": "wf", "node_id": "node", "version_id": "v1"}
TOKEN = "s3cret-Token_value.42"  # noqa: S105 - a test token for a loopback server


def _failure(call: Callable[..., object], request: object, **kwargs: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30, **kwargs)
    details = info.value.details() or ""
    assert "Traceback" not in details
    return info.value


def _trailing(call: grpc.Call) -> dict[str, str]:
    pairs: Any = call.trailing_metadata() or ()
    return dict(pairs)


# -- loopback by default ------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:0", "127.8.9.10:50051", "localhost:0", "LOCALHOST:1", "[::1]:0", "unix:/tmp/s"],
)
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)
    check_address(address, allow_remote=False)


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0:0",
        "[::]:0",
        ":50051",
        "10.1.2.3:0",
        "192.168.0.1:1",
        "example.com:0",
        "[fe80::1]:0",
    ],
)
def test_other_addresses_need_allow_remote(address: str) -> None:
    assert not is_loopback(address)
    host, _, port = address.rpartition(":")
    with pytest.raises(RemoteAddressNotAllowed, match="allow_remote"):
        ServeOptions(host=host, port=int(port))
    # Allowed on request (checked without binding: tests bind loopback only).
    check_address(address, allow_remote=True)


def test_cli_refuses_a_remote_host_with_exit_2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    argv = ["--host", "0.0.0.0", "--port", "0", "--root", str(tmp_path / "r")]  # noqa: S104 - refused
    code = main(argv, environ={})
    assert code == 2
    assert "--allow-remote" in caplog.text
    assert "not a loopback address" in caplog.text
    assert not (tmp_path / "r").exists(), "refused before touching the root"


# -- the bearer token ---------------------------------------------------------------


@pytest.fixture
def token_target(serve: Serve, fake_manager: uv_envs.EnvManager) -> str:
    return serve(fake_manager, token=TOKEN)


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong"),),
        (("authorization", f"Bearer {TOKEN}x"),),
        (("authorization", TOKEN),),
        (("authorization", f"Basic {TOKEN}"),),
        (("x-token", TOKEN),),
    ],
    ids=["missing", "wrong", "longer", "no-scheme", "basic", "other-key"],
)
def test_a_missing_or_wrong_token_is_unauthenticated(
    token_target: str, metadata: tuple[tuple[str, str], ...]
) -> None:
    with grpc.insecure_channel(token_target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        for call, request in [
            (stub.GetEnvStatus, pb.GetEnvStatusRequest(**IDENT)),
            (stub.CreateEnv, pb.CreateEnvRequest(**IDENT, packages=["alpha"])),
            (stub.DeleteEnv, pb.DeleteEnvRequest(**IDENT)),
            (stub.Cleanup, pb.CleanupRequest(idle_hours=0)),
        ]:
            error = _failure(call, request, metadata=metadata)
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            assert TOKEN not in (error.details() or "")
            assert "Bearer <token>" in (error.details() or "")
        # Nothing was created by the refused CreateEnv.
        good = (("authorization", f"Bearer {TOKEN}"),)
        status = stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT), timeout=30, metadata=good)
        assert status.status == "NOT_FOUND"


def test_the_right_token_is_served_and_health_needs_none(
    token_target: str, open_client: OpenClient
) -> None:
    with grpc.insecure_channel(token_target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        lower = (("authorization", f"bearer {TOKEN}"),)
        assert stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT), metadata=lower).status
        # Reflection is guarded like the service; health checks are not.
        request_cls = reflection_pb2.ServerReflectionRequest
        response_cls = reflection_pb2.ServerReflectionResponse
        reflect = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            list(reflect(iter([request_cls(list_services="")]), timeout=30))
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert list(reflect(iter([request_cls(list_services="")]), timeout=30, metadata=lower))

    anonymous = open_client(token_target, timeout=30)
    assert anonymous.health() == "SERVING"
    with pytest.raises(RemoteError) as refused:
        anonymous.get(uv_envs.EnvKey("wf", "node"))
    assert refused.value.code is grpc.StatusCode.UNAUTHENTICATED

    client = open_client(token_target, timeout=30, token=TOKEN)
    created = client.ensure(uv_envs.EnvKey("wf", "node"), ["alpha"])
    assert str(created.python_path).endswith("/.venv/bin/python")
    assert client.get(uv_envs.EnvKey("wf", "node")).status is uv_envs.EnvStatus.READY


def test_provider_with_a_token(token_target: str) -> None:
    provider = GrpcEnvironmentProvider(token_target, timeout=30, token=TOKEN)
    try:
        testing.check_provider_contract(
            provider, {"workflow_id": "wf", "node_id": "tok", "packages": ["alpha"]}
        )
    finally:
        provider.close()


@pytest.mark.parametrize("token", ["", "has space", "tab\there", "é-non-ascii"])
def test_serve_options_refuse_a_bad_token(token: str) -> None:
    with pytest.raises(ValueError, match="token") as info:
        ServeOptions(token=token)
    if token:
        assert token not in str(info.value)


def test_cli_reads_the_token_file_and_the_variable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = str(tmp_path / "r")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert main(["--port", "0", "--root", root, "--token-file", str(empty)], environ={}) == 2
    assert "token is empty" in caplog.text
    caplog.clear()
    missing = tmp_path / "missing"
    assert main(["--port", "0", "--root", root, "--token-file", str(missing)], environ={}) == 2
    assert "cannot read the token file" in caplog.text
    caplog.clear()
    secret = "not printable ascii " + TOKEN
    assert main(["--port", "0", "--root", root], environ={"UV_ENVS_SERVER_TOKEN": secret}) == 2
    assert "printable ASCII" in caplog.text
    assert secret not in caplog.text
    assert "Traceback" not in caplog.text


# -- TLS ------------------------------------------------------------------------------


def test_tls_with_a_self_signed_certificate(
    serve: Serve,
    fake_manager: uv_envs.EnvManager,
    open_client: OpenClient,
    self_signed: SelfSigned,
    tmp_path: Path,
) -> None:
    cert, key = self_signed()
    target = serve(fake_manager, tls=tls_files(tmp_path, cert, key), token=TOKEN)
    client = open_client(target, timeout=30, root_certificates=cert, token=TOKEN)
    assert client.health() == "SERVING"
    tls_env = client.ensure(uv_envs.EnvKey("wf", "tls"), ["alpha"])
    assert str(tls_env.python_path).endswith("/.venv/bin/python")
    assert client.get(uv_envs.EnvKey("wf", "tls")).status is uv_envs.EnvStatus.READY

    # The token is still required over TLS.
    no_token = open_client(target, timeout=30, root_certificates=cert)
    with pytest.raises(RemoteError) as refused:
        no_token.get(uv_envs.EnvKey("wf", "tls"))
    assert refused.value.code is grpc.StatusCode.UNAUTHENTICATED

    # A plaintext client, or one that trusts another certificate, gets no answer.
    other_cert, _ = self_signed()
    for stranger in (
        open_client(target, timeout=5, token=TOKEN),
        open_client(target, timeout=5, root_certificates=other_cert, token=TOKEN),
    ):
        with pytest.raises(RemoteError) as info:
            stranger.get(uv_envs.EnvKey("wf", "tls"))
        assert info.value.code is grpc.StatusCode.UNAVAILABLE

    provider = GrpcEnvironmentProvider(target, timeout=30, root_certificates=cert, token=TOKEN)
    try:
        created = provider.create_environment("v", {"workflow_id": "wf", "node_id": "tls"})
        assert created["status"] == "READY"
    finally:
        provider.close()


def test_create_server_refuses_what_is_not_pem(
    fake_manager: uv_envs.EnvManager, tmp_path: Path
) -> None:
    secret = b"top secret key material"
    with pytest.raises(ValueError, match="not a PEM certificate") as info:
        create_server(fake_manager, ServeOptions(tls=tls_files(tmp_path, secret, secret)))
    assert "secret" not in str(info.value)
    cert = b"-----BEGIN CERTIFICATE-----\nAAAA\n"
    with pytest.raises(ValueError, match="not a PEM private key"):
        create_server(fake_manager, ServeOptions(tls=tls_files(tmp_path, cert, secret)))
    with pytest.raises(ValueError, match="cannot read the TLS key") as info:
        create_server(fake_manager, ServeOptions(tls=TlsFiles(tmp_path / "cert.pem", tmp_path)))
    assert "secret" not in str(info.value)


def test_a_tls_pair_grpc_cannot_load_is_a_clear_error(
    fake_manager: uv_envs.EnvManager, tmp_path: Path
) -> None:
    cert = b"-----BEGIN CERTIFICATE-----\nAAAAsecret\n-----END CERTIFICATE-----\n"
    key = b"-----BEGIN PRIVATE KEY-----\nsecretkey\n-----END PRIVATE KEY-----\n"
    with pytest.raises(OSError, match="TLS certificate and key") as info:
        create_server(fake_manager, ServeOptions(tls=tls_files(tmp_path, cert, key)))
    assert "secret" not in str(info.value)


def test_cli_needs_both_tls_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    args = ["--port", "0", "--root", str(tmp_path / "r"), "--tls-cert", str(cert)]
    assert main(args, environ={}) == 2
    assert "--tls-cert and --tls-key go together" in caplog.text


# -- limits -------------------------------------------------------------------------------


def test_a_request_over_the_default_size_is_resource_exhausted(
    stub_channel: grpc.Channel,
) -> None:
    stub = env_manager_pb2_grpc.EnvManagerServiceStub(stub_channel)
    big = b"# " + b"x" * DEFAULT_MAX_MESSAGE_BYTES + b"\nalpha\n"
    error = _failure(stub.CreateEnv, pb.CreateEnvRequest(**IDENT, requirements_file_content=big))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT), timeout=30).status == "NOT_FOUND"


def test_the_size_limit_is_configurable(serve: Serve, fake_manager: uv_envs.EnvManager) -> None:
    target = serve(fake_manager, max_message_bytes=4096)
    with grpc.insecure_channel(target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        text = b"alpha\n" + b"# padding\n" * 500
        error = _failure(
            stub.CreateEnv, pb.CreateEnvRequest(**IDENT, requirements_file_content=text)
        )
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        small = stub.CreateEnv(pb.CreateEnvRequest(**IDENT, packages=["alpha"]), timeout=30)
        assert small.status == "READY"


def test_too_many_packages_is_invalid_argument(
    serve: Serve, fake_manager: uv_envs.EnvManager, stub_channel: grpc.Channel
) -> None:
    # The default: 1000 packages per request.
    default = env_manager_pb2_grpc.EnvManagerServiceStub(stub_channel)
    many = [f"pkg{i}" for i in range(1001)]
    error = _failure(default.CreateEnv, pb.CreateEnvRequest(**IDENT, packages=many))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "at most 1000" in (error.details() or "")
    assert "pkg500" not in (error.details() or ""), "the message does not echo the list"

    target = serve(fake_manager, max_packages=2)
    with grpc.insecure_channel(target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        three = ["alpha", "beta", "gamma"]
        for call, request in [
            (stub.CreateEnv, pb.CreateEnvRequest(**IDENT, packages=three)),
            (stub.AddDeps, pb.DepsRequest(**IDENT, packages=three)),
            (stub.UpdateDeps, pb.DepsRequest(**IDENT, packages=three)),
            (stub.RemoveDeps, pb.DepsRequest(**IDENT, packages=three)),
        ]:
            error = _failure(call, request)
            assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "at most 2 per request" in (error.details() or "")
        assert stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT)).status == "NOT_FOUND"
        ok = stub.CreateEnv(pb.CreateEnvRequest(**IDENT, packages=["alpha", "beta"]), timeout=30)
        assert ok.status == "READY"


def test_bad_limits_are_refused() -> None:
    # ServeOptions checks them when made, before either server binds anything.
    with pytest.raises(ValueError, match="max_packages"):
        ServeOptions(max_packages=0)
    with pytest.raises(ValueError, match="max_message_bytes"):
        ServeOptions(max_message_bytes=10)
    with pytest.raises(ValueError, match="max_workers"):
        ServeOptions(max_workers=0)
    with pytest.raises(ValueError, match="min_cleanup_idle_hours"):
        ServeOptions(min_cleanup_idle_hours=float("nan"))


# -- request ids and the log ------------------------------------------------------


@pytest.fixture
def stub_channel(fake_target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(fake_target) as channel:
        yield channel


def test_request_ids_are_returned_and_logged(
    stub_channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uv_envs_server")
    stub = env_manager_pb2_grpc.EnvManagerServiceStub(stub_channel)

    _, call = stub.GetEnvStatus.with_call(
        pb.GetEnvStatusRequest(**IDENT), timeout=30, metadata=((REQUEST_ID_KEY, "req-42.a:b"),)
    )
    assert _trailing(call)[REQUEST_ID_KEY] == "req-42.a:b"
    assert re.search(
        r"/envmanager\.EnvManagerService/GetEnvStatus OK \d+\.\dms request_id=req-42\.a:b",
        caplog.text,
    )

    # No id, or one that could garble the log: the server makes one up.
    for metadata in [(), ((REQUEST_ID_KEY, "x" * 200),), ((REQUEST_ID_KEY, "a b"),)]:
        _, call = stub.GetEnvStatus.with_call(
            pb.GetEnvStatusRequest(**IDENT), timeout=30, metadata=metadata
        )
        assert re.fullmatch(r"[0-9a-f]{32}", _trailing(call)[REQUEST_ID_KEY])
    assert "x" * 200 not in caplog.text

    # Failures keep the id beside the error class.
    error = _failure(stub.ListDeps, pb.ListDepsRequest(**IDENT), metadata=((REQUEST_ID_KEY, "r2"),))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    trailing = _trailing(error)  # type: ignore[arg-type]
    assert trailing[REQUEST_ID_KEY] == "r2"
    assert trailing[ERROR_CLASS_KEY] == "EnvironmentNotFound"
    assert "ListDeps NOT_FOUND" in caplog.text
    assert "request_id=r2" in caplog.text


def test_refused_and_unimplemented_calls_are_logged(
    token_target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uv_envs_server")
    with grpc.insecure_channel(token_target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        error = _failure(
            stub.GetEnvStatus,
            pb.GetEnvStatusRequest(**IDENT),
            metadata=((REQUEST_ID_KEY, "who-is-it"),),
        )
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        assert _trailing(error)[REQUEST_ID_KEY] == "who-is-it"  # type: ignore[arg-type]
        good = (("authorization", f"Bearer {TOKEN}"), (REQUEST_ID_KEY, "run-1"))
        error = _failure(stub.RunCode, pb.RunCodeRequest(**IDENT), metadata=good)
        assert error.code() is grpc.StatusCode.UNIMPLEMENTED
    assert "GetEnvStatus UNAUTHENTICATED" in caplog.text
    assert "request_id=who-is-it" in caplog.text
    assert "RunCode UNIMPLEMENTED" in caplog.text
    assert TOKEN not in caplog.text


class _LeakyManager:
    """Fails with errors whose text must not reach the client."""

    cluster = None  # serves no Ray cluster: the server reads this when it starts

    def status(self, key: uv_envs.EnvKey) -> None:
        raise OSError(2, "No such file", "/srv/root/wf/node/metadata.json")

    def provision(self, key: uv_envs.EnvKey, **kwargs: object) -> None:
        raise ValueError("password=hunter2 in /etc/uv-envs.conf line 3")

    def delete(self, key: uv_envs.EnvKey) -> None:
        raise uv_envs.EnvironmentInUse(f"{key} is leased by process 4242")


def test_unexpected_errors_never_leak(serve: Serve, caplog: pytest.LogCaptureFixture) -> None:
    target = serve(_LeakyManager())
    with grpc.insecure_channel(target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        error = _failure(stub.GetEnvStatus, pb.GetEnvStatusRequest(**IDENT))
        assert error.code() is grpc.StatusCode.INTERNAL
        assert "/srv/root" not in (error.details() or "")
        error = _failure(
            stub.CreateEnv, pb.CreateEnvRequest(**IDENT), metadata=((REQUEST_ID_KEY, "leak-1"),)
        )
        assert error.code() is grpc.StatusCode.INTERNAL
        assert "hunter2" not in (error.details() or "")
        assert (
            error.details()
            == "internal error (ValueError); see the server log under request id leak-1"
        )
        assert _trailing(error)[REQUEST_ID_KEY] == "leak-1"  # type: ignore[arg-type]
        error = _failure(stub.DeleteEnv, pb.DeleteEnvRequest(**IDENT))
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "leased" in (error.details() or "")
    assert "hunter2" in caplog.text, "the server's own log keeps the cause"
    assert "unexpected error (request id leak-1)" in caplog.text


def test_client_in_plaintext_against_default_server(fake_client: EnvManagerClient) -> None:
    # The guards add nothing a plain client must do: no token, no TLS by default.
    assert fake_client.health() == "SERVING"
    with pytest.raises(uv_envs.EnvironmentNotFound):  # GetEnvStatus answered NOT_FOUND
        fake_client.get(uv_envs.EnvKey("wf", "node"))
