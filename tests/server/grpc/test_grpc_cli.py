"""``uv-envs-server`` as a real subprocess: start, serve, and stop cleanly on signals.

The server is started as ``python -m uv_envs_server`` (the console script's
own ``main``), so the test does not depend on ``PATH``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

import uv_envs
from tests.server.conftest import rpc
from tests.support.server_process import SOURCE_ROOT, Server, wheelhouse_env
from uv_envs import EnvStatus
from uv_envs._uv.executor import find_uv_binary
from uv_envs_server import EnvManagerClient, RemoteError
from uv_envs_server._cli import main
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.server.conftest import SelfSigned


@pytest.fixture
def server_env(wheelhouse: Path, uv_cache: Path) -> dict[str, str]:
    return wheelhouse_env(wheelhouse, uv_cache)


StartServer = Callable[..., Server]  # a Server subclass whose arguments are the extra options


@pytest.fixture
def start(tmp_path: Path, server_env: dict[str, str]) -> Iterator[StartServer]:
    started: list[Server] = []

    class Started(Server):
        def __init__(self, *extra: str) -> None:
            args = ["--port", "0", "--root", str(tmp_path / "root"), "--workers", "4", *extra]
            super().__init__(args, server_env)
            started.append(self)

    yield Started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()


def test_serves_and_exits_zero_on_sigterm(start: StartServer, tmp_path: Path) -> None:
    server = start()
    assert server.target.startswith("127.0.0.1:"), server.process.stderr
    with EnvManagerClient(server.target, timeout=120) as client:
        assert client.health() == "SERVING"
        python = client.ensure(uv_envs.EnvKey("wf", "node"), ["gamma"]).python_path
        assert python.is_file()
        assert str(tmp_path / "root") in str(python)
    assert server.stop(signal.SIGTERM) == 0
    assert "SIGTERM" in server.stderr
    assert "Traceback" not in server.stderr


def test_uv_envs_serve_runs_the_server_with_global_options_on_both_sides(
    tmp_path: Path, server_env: dict[str, str], wheelhouse: Path
) -> None:
    # --root before serve, --find-links after it: the wheels are found only through the option.
    env = {name: value for name, value in server_env.items() if name != "UV_ENVS_FIND_LINKS"}
    root = tmp_path / "served-root"
    args = ["--root", str(root), "serve", "--port", "0", "--workers", "4"]
    server = Server([*args, "--find-links", str(wheelhouse)], env, module="uv_envs")
    try:
        if not server.target.startswith("127.0.0.1:"):
            server.stop(signal.SIGKILL)
            pytest.fail(f"uv-envs serve did not start: {server.stderr}")
        with EnvManagerClient(server.target, timeout=120) as client:
            assert client.health() == "SERVING"
            python = client.ensure(uv_envs.EnvKey("wf", "node"), ["gamma"]).python_path
            assert str(python).startswith(str(root))
        assert server.stop(signal.SIGTERM) == 0
        assert "SIGTERM" in server.stderr
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()


def test_exits_zero_on_sigint(start: StartServer) -> None:
    server = start()
    with EnvManagerClient(server.target, timeout=30) as client:
        assert client.health() == "SERVING"
    assert server.stop(signal.SIGINT) == 0
    assert "Traceback" not in server.stderr


def _slow_uv(folder: Path, sync_seconds: float) -> tuple[Path, Path]:
    """A uv wrapper whose ``uv sync`` starts after ``sync_seconds``; returns it and its marker."""
    marker = folder / "syncing"
    script = folder / "slow-uv"
    script.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = sync ]; then\n'
        f"  : > '{marker}'\n"
        f"  sleep {sync_seconds}\n"
        "fi\n"
        f"exec '{find_uv_binary()}' \"$@\"\n"
    )
    script.chmod(0o755)
    return script, marker


def _refused_after_sigterm(target: str, deadline: float) -> grpc.StatusCode:
    """Call until the server refuses; return the code it refused with."""
    with EnvManagerClient(target, timeout=2) as late:
        while time.monotonic() < deadline:
            try:
                late.get(uv_envs.EnvKey("wf", "other"))
            except uv_envs.EnvironmentNotFound:
                pass  # answered: still accepting calls
            except RemoteError as exc:
                if exc.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                    continue  # a slow answer on a loaded machine, not a refusal: ask again
                return exc.code
            time.sleep(0.05)
    raise AssertionError("still accepting calls after SIGTERM")


@pytest.mark.parametrize(
    ("sync_seconds", "grace", "expected"),
    [(2, 60, EnvStatus.READY), (60, 1, EnvStatus.NOT_FOUND)],
    ids=["finishes-within-grace", "rolled-back-after-grace"],
)
def test_sigterm_during_a_create_leaves_it_ready_or_absent(
    tmp_path: Path,
    server_env: dict[str, str],
    manager: uv_envs.EnvManager,
    sync_seconds: float,
    grace: float,
    expected: EnvStatus,
) -> None:
    uv, marker = _slow_uv(tmp_path, sync_seconds)
    args = ["--port", "0", "--root", str(manager.settings.root), "--grace", str(grace)]
    server = Server(args, {**server_env, "UV_ENVS_UV_BIN": str(uv)})
    try:
        client = EnvManagerClient(server.target, timeout=120)
        channel = grpc.insecure_channel(server.target)
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        with client, channel, futures.ThreadPoolExecutor(1) as pool:
            assert client.health() == "SERVING"
            # One CreateEnv on the wire: the call in flight when SIGTERM comes.
            request = pb.CreateEnvRequest(workflow_id="wf", node_id="slow", packages=["beta"])
            creating = pool.submit(rpc, stub.CreateEnv, request, timeout=120)
            deadline = time.monotonic() + 60
            while not marker.exists():  # the create is inside uv sync
                assert time.monotonic() < deadline, "the create never reached uv sync"
                assert not creating.done(), creating.result()
                time.sleep(0.01)
            server.process.send_signal(signal.SIGTERM)
            # The server stops accepting calls at once, while the create goes on.
            refused = _refused_after_sigterm(server.target, deadline)
            assert refused in {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
            if expected is EnvStatus.READY:
                assert creating.result(timeout=120).status == "READY"
            else:
                with pytest.raises((uv_envs.OperationCancelled, RemoteError)):
                    creating.result(timeout=120)
        started = time.monotonic()
        assert server.stop(None) == 0
        assert time.monotonic() - started < grace + 30
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate()
    assert "Traceback" not in server.stderr
    assert "still running after the grace period" not in server.stderr, "drained in time"
    assert "CreateEnv" in server.stderr, "the create was logged"

    # READY and importable, or absent: never half-built, nothing left to repair.
    key = uv_envs.EnvKey("wf", "slow")
    assert manager.status(key).status is expected
    assert manager.recover() == []
    if expected is EnvStatus.READY:
        python = manager.get(key).python_path
        subprocess.run([str(python), "-c", "import beta"], check=True, timeout=60)
    else:
        assert not manager._core.services.layout.env_dir(key).exists()
        assert "cancel" in (manager.operations("wf", "slow").items[0].error or "").lower()


def test_tls_token_and_limits_from_the_command_line(
    start: StartServer, tmp_path: Path, self_signed: SelfSigned
) -> None:
    cert, key = self_signed()
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "token").write_text("cli-token-1234\n")
    server = start(
        "--tls-cert",
        str(tmp_path / "cert.pem"),
        "--tls-key",
        str(tmp_path / "key.pem"),
        "--token-file",
        str(tmp_path / "token"),
        "--max-packages",
        "2",
        "--max-message-bytes",
        "65536",
    )
    assert server.target.startswith("127.0.0.1:"), server.process.stderr
    with EnvManagerClient(
        server.target,
        timeout=120,
        root_certificates=cert,
        token="cli-token-1234",  # noqa: S106 - a test token for a loopback server
    ) as client:
        assert client.health() == "SERVING"
        assert client.ensure(uv_envs.EnvKey("wf", "tls"), ["gamma"]).python_path.is_file()
        with pytest.raises(uv_envs.InvalidInput, match="at most 2 per request"):
            client.ensure(uv_envs.EnvKey("wf", "many"), ["alpha", "beta", "gamma"])
        big_text = "# " + "x" * 70000 + "\nalpha\n"
        with pytest.raises(RemoteError) as big:
            client.ensure(uv_envs.EnvKey("wf", "big"), requirements_text=big_text)
        assert big.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    with EnvManagerClient(server.target, timeout=30, root_certificates=cert) as anonymous:
        with pytest.raises(RemoteError) as refused:
            anonymous.get(uv_envs.EnvKey("wf", "tls"))
        assert refused.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert server.stop() == 0
    assert "TLS on, token required" in server.stderr
    assert "cli-token-1234" not in server.stderr
    assert "UNAUTHENTICATED" in server.stderr


def test_a_remote_host_needs_allow_remote(tmp_path: Path, server_env: dict[str, str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "uv_envs_server", "--host", "0.0.0.0", "--port", "0"],  # noqa: S104 - refused
        env={**server_env, "UV_ENVS_ROOT": str(tmp_path / "root")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "--allow-remote" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "root").exists()


def test_a_taken_port_fails_with_a_message(tmp_path: Path, server_env: dict[str, str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "uv_envs_server", "--port", str(port)],
            env={**server_env, "UV_ENVS_ROOT": str(tmp_path / "root")},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2
    assert "could not listen" in result.stderr
    assert "Traceback" not in result.stderr


def test_index_options_on_the_command_line(
    tmp_path: Path, wheelhouse: Path, uv_cache: Path, start: StartServer
) -> None:
    server = Server(
        [
            "--port",
            "0",
            "--root",
            str(tmp_path / "cli-root"),
            "--find-links",
            str(wheelhouse),
            "--no-index",
        ],
        {
            **{k: v for k, v in os.environ.items() if not k.startswith("UV_ENVS_")},
            "PYTHONPATH": str(SOURCE_ROOT),
            "UV_ENVS_CACHE_DIR": str(uv_cache),
        },
    )
    try:
        with EnvManagerClient(server.target, timeout=120) as client:
            key = uv_envs.EnvKey("wf", "flags")
            python = str(client.ensure(key, ["alpha==1.0"]).python_path)
            assert str(tmp_path / "cli-root") in python
    finally:
        assert server.stop() == 0


def test_bad_setup_returns_2_and_restores_signal_handlers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    code = main(["--port", "0", "--root", str(tmp_path / "r"), "--workers", "0"])
    assert code == 2
    assert "max_workers must be at least 1" in caplog.text
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_help_names_the_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in (
        "--host",
        "--port",
        "--root",
        "--workers",
        "--grace",
        "--find-links",
        "--allow-remote",
        "--tls-cert",
        "--tls-key",
        "--token-file",
        "UV_ENVS_SERVER_TOKEN",
        "--max-message-bytes",
        "--max-packages",
    ):
        assert option in out
