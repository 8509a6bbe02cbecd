"""``uv-envs-server --http-port``: HTTP beside gRPC on one root, from the console script."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import uv_envs
import uv_envs_server
from tests.support.server_process import wheelhouse_env
from uv_envs_server import EnvManagerClient, HttpEnvClient

TOKEN = "cli-token"  # noqa: S105 - a test token for a loopback server
KEY = uv_envs.EnvKey("wf", "node")


def _console_script() -> list[str]:
    # The installed entry point next to this interpreter; `-m` when it is not installed.
    script = Path(sys.executable).with_name("uv-envs-server")
    if script.is_file():
        return [str(script)]
    found = shutil.which("uv-envs-server")
    return [found] if found else [sys.executable, "-m", "uv_envs_server"]


def _read_lines(process: subprocess.Popen[str], count: int) -> list[str]:
    assert process.stdout is not None
    reader = futures.ThreadPoolExecutor(1)
    try:
        return [reader.submit(process.stdout.readline).result(timeout=60) for _ in range(count)]
    finally:
        reader.shutdown(wait=False)


def test_http_and_grpc_serve_one_root_with_one_token(
    tmp_path: Path, wheelhouse: Path, uv_cache: Path
) -> None:
    env = wheelhouse_env(wheelhouse, uv_cache)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    root = tmp_path / "root"
    args = ["--port", "0", "--http-port", "0", "--root", str(root), "--token-file", str(token_file)]
    process = subprocess.Popen(
        [*_console_script(), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        grpc_line, http_line = _read_lines(process, 2)
        assert grpc_line.startswith("uv-envs-server listening on 127.0.0.1:"), grpc_line
        assert http_line.startswith("uv-envs-server HTTP listening on http://127.0.0.1:"), http_line
        target = grpc_line.rsplit(" ", 1)[1].strip()
        url = http_line.rsplit(" ", 1)[1].strip()

        with HttpEnvClient(url, token=TOKEN, timeout=120) as http:
            python = http.ensure(KEY, ["gamma"]).python_path
            assert python.is_file()
            assert str(root) in str(python)
        with HttpEnvClient(url, timeout=30) as anonymous:
            assert anonymous.health() == "SERVING"
            with pytest.raises(uv_envs_server.HttpRemoteError):
                anonymous.get(KEY)
        # The same env, seen over gRPC: one root, one manager.
        with EnvManagerClient(target, timeout=30, token=TOKEN) as grpc_client:
            assert grpc_client.get(KEY).status is uv_envs.EnvStatus.READY
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "GET /v1/health 200" not in stderr  # health is logged at DEBUG
    assert "PUT /v1/envs/wf/node/@ 200" in stderr  # one access-log line per request


def test_a_remote_http_host_is_refused_like_grpc(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *_console_script(),
            *("--host", "0.0.0.0", "--port", "0", "--http-port", "0"),  # noqa: S104 - refused
            *("--root", str(tmp_path / "root")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "not a loopback address" in result.stderr
