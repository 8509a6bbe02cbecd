"""Fixtures for the gRPC server tests: servers on ephemeral loopback ports, and clients.

The fixtures ``manager`` (real uv against the test wheelhouse) and
``fake_manager`` (the fake uv) come from ``tests/conftest.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import grpc
import pytest

import uv_envs
from uv_envs.testing import FakePythonFinder, FakeUvExecutor
from uv_envs_server import (
    EnvManagerClient,
    EnvManagerServer,
    ServeOptions,
    TlsFiles,
    create_server,
)
from uv_envs_server._generated.env_manager_pb2_grpc import EnvManagerServiceStub
from uv_envs_server._grpc.errors import from_rpc_error

if TYPE_CHECKING:
    from uv_envs._uv.commands import UvInvocation
    from uv_envs._uv.executor import UvResult
    from uv_envs_server import HttpServer

Serve = Callable[..., str]
OpenClient = Callable[..., EnvManagerClient]
OpenStub = Callable[[str], EnvManagerServiceStub]
_Answer = TypeVar("_Answer")


class Ident(TypedDict):
    """The key fields of an env request, for ``pb.CreateEnvRequest(**IDENT, ...)``."""

    workflow_id: str
    node_id: str
    version_id: str


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a server on 127.0.0.1:<free port> for a manager; returns its target.

    Keyword arguments are :class:`~uv_envs_server.ServeOptions` fields.
    """
    started: list[EnvManagerServer] = []

    def start(manager: uv_envs.EnvManager, **kwargs: Any) -> str:  # noqa: ANN401 - ServeOptions fields
        server, port = create_server(manager, ServeOptions(**kwargs))
        server.start()
        started.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in started:
        server.stop(None).wait()
        server.executor.shutdown(wait=True)


@pytest.fixture
def open_client() -> Iterator[OpenClient]:
    """Open clients that are closed after the test."""
    clients: list[EnvManagerClient] = []

    def make(target: str, **kwargs: Any) -> EnvManagerClient:  # noqa: ANN401 - the client's options
        client = EnvManagerClient(target, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def open_stub() -> Iterator[OpenStub]:
    """Open WTB's view of a server, the generated stub, on channels closed after the test."""
    channels: list[grpc.Channel] = []

    def make(target: str) -> EnvManagerServiceStub:
        channels.append(grpc.insecure_channel(target))
        return EnvManagerServiceStub(channels[-1])

    yield make
    for channel in channels:
        channel.close()


def rpc(call: Callable[..., _Answer], request: object, *, timeout: float = 30) -> _Answer:
    """One call of a stub; a failure raises the core exception the server named, as clients do."""
    try:
        return call(request, timeout=timeout)
    except grpc.RpcError as err:
        raise from_rpc_error(err) from err


@pytest.fixture
def fake_target(serve: Serve, fake_manager: uv_envs.EnvManager) -> str:
    """A server on the fake uv: fast, no real installs."""
    return serve(fake_manager)


@pytest.fixture
def fake_client(fake_target: str, open_client: OpenClient) -> EnvManagerClient:
    return open_client(fake_target, timeout=30)


@pytest.fixture
def channel(fake_target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(fake_target) as channel:
        yield channel


class GatedExecutor:
    """Wraps a uv executor; every uv call waits until ``release`` is set."""

    def __init__(self, inner: uv_envs.UvExecutor) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, invocation: UvInvocation) -> UvResult:
        self.entered.set()
        if not self.release.wait(timeout=60):
            raise AssertionError("the gate was never opened")
        result: UvResult = self.inner.run(invocation)
        return result


GatedManager = Callable[..., tuple[uv_envs.EnvManager, GatedExecutor]]


@pytest.fixture
def small_server(
    fake_manager: uv_envs.EnvManager,
) -> Iterator[tuple[EnvManagerServer, grpc.Channel]]:
    """A started server with 4 workers (room for one health Watch stream), and a channel to it."""
    server, port = create_server(fake_manager, ServeOptions(max_workers=4))
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield server, channel
    finally:
        server.stop(None)
        server.executor.shutdown(wait=True)


@pytest.fixture
def gated_manager(tmp_path: Path, fake_uv: FakeUvExecutor) -> GatedManager:
    """Make a manager on the fake uv whose uv calls wait for ``gate.release``."""

    def make(lock_timeout: float = 5.0) -> tuple[uv_envs.EnvManager, GatedExecutor]:
        gate = GatedExecutor(fake_uv)
        manager = uv_envs.EnvManager(
            uv_envs.Settings(root=tmp_path / "gated", lock_timeout=lock_timeout),
            executor=gate,
            python_finder=FakePythonFinder(),
        )
        return manager, gate

    return make


def _self_signed_with_cryptography(host: str) -> tuple[bytes, bytes]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _self_signed_with_openssl(openssl: str, host: str, folder: Path) -> tuple[bytes, bytes]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            f"subjectAltName=DNS:localhost,IP:{host}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert.read_bytes(), key.read_bytes()


SelfSigned = Callable[[], tuple[bytes, bytes]]


def tls_files(folder: Path, cert: bytes, key: bytes) -> TlsFiles:
    """Write a PEM pair into ``folder``; the files a server's ``tls`` option names."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    return TlsFiles(folder / "cert.pem", folder / "key.pem")


@pytest.fixture
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    """Make a new self-signed certificate for 127.0.0.1 and localhost: ``(cert_pem, key_pem)``.

    With the ``cryptography`` package when it is importable, else with the
    ``openssl`` command; skips when there is neither (no new test dependency).
    """
    try:
        import cryptography  # noqa: F401
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("making a test certificate needs the cryptography package or openssl")
        return lambda: _self_signed_with_openssl(
            openssl, "127.0.0.1", tmp_path_factory.mktemp("tls")
        )
    return lambda: _self_signed_with_cryptography("127.0.0.1")


HttpServe = Callable[..., "HttpServer"]


@pytest.fixture
def http_serve() -> Iterator[HttpServe]:
    """Start the HTTP API on 127.0.0.1:<free port> for a manager; returns the started server.

    Keyword arguments are :class:`~uv_envs_server.ServeOptions` fields.
    """
    http_server = pytest.importorskip(
        "uv_envs_server._http.server", reason="needs the [http] extra"
    )
    started: list[HttpServer] = []

    def start(manager: uv_envs.EnvManager, **kwargs: Any) -> HttpServer:  # noqa: ANN401 - ServeOptions fields
        server: HttpServer = http_server.create_http_server(manager, ServeOptions(**kwargs))
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(5)
        server.executor.shutdown(wait=True)
