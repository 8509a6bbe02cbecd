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
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import uv_envs_server
from uv_envs_server import EnvManagerClient
from uv_envs_server._cli import main

if TYPE_CHECKING:
    from collections.abc import Iterator

SOURCE_ROOT = Path(uv_envs_server.__file__).resolve().parents[1]


class Server:
    """A running ``uv-envs-server`` process and the target it listens on."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uv_envs_server", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.target = ""
        self.stderr = ""
        assert self.process.stdout is not None
        # The first stdout line says where it listens; read it with a deadline.
        reader = futures.ThreadPoolExecutor(1)
        try:
            line = reader.submit(self.process.stdout.readline).result(timeout=60)
        finally:
            reader.shutdown(wait=False)
        if line.startswith("uv-envs-server listening on "):
            self.target = line.rsplit(" ", 1)[1].strip()

    def stop(self, signum: int | None = signal.SIGTERM, timeout: float = 60) -> int:
        """Send ``signum`` (None: it was sent already) and wait for the exit code."""
        if signum is not None and self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            _, self.stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
            raise
        return self.process.returncode


@pytest.fixture
def server_env(wheelhouse: Path, uv_cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SOURCE_ROOT), env.get("PYTHONPATH")]))
    env["UV_ENVS_FIND_LINKS"] = str(wheelhouse)
    env["UV_ENVS_NO_INDEX"] = "1"
    env["UV_ENVS_CACHE_DIR"] = str(uv_cache)
    return env


@pytest.fixture
def start(tmp_path: Path, server_env: dict[str, str]) -> Iterator[type[Server]]:
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


def test_serves_and_exits_zero_on_sigterm(start: type[Server], tmp_path: Path) -> None:
    server = start()
    assert server.target.startswith("127.0.0.1:"), server.process.stderr
    with EnvManagerClient(server.target, timeout=120) as client:
        assert client.health() == "SERVING"
        python = client.ensure_env("wf", "node", packages=["gamma"])
        assert Path(python).is_file()
        assert str(tmp_path / "root") in python
    assert server.stop(signal.SIGTERM) == 0
    assert "SIGTERM" in server.stderr
    assert "Traceback" not in server.stderr


def test_exits_zero_on_sigint(start: type[Server]) -> None:
    server = start()
    with EnvManagerClient(server.target, timeout=30) as client:
        assert client.health() == "SERVING"
    assert server.stop(signal.SIGINT) == 0
    assert "Traceback" not in server.stderr


def test_sigterm_lets_a_running_create_finish(start: type[Server]) -> None:
    server = start("--grace", "60")
    with EnvManagerClient(server.target, timeout=120) as client:
        assert client.health() == "SERVING"
        with futures.ThreadPoolExecutor(1) as pool:
            creating = pool.submit(client.create_env, "wf", "slow", packages=["beta"])
            # Signal only once the create has reached the manager (its audit row exists).
            deadline = time.monotonic() + 60
            while not creating.done() and client.get_operations("wf", "slow").total == 0:
                assert time.monotonic() < deadline, "the create never reached the server"
                time.sleep(0.01)
            server.process.send_signal(signal.SIGTERM)
            assert creating.result(timeout=120).status == "READY"
    assert server.stop(None) == 0


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
    tmp_path: Path, wheelhouse: Path, uv_cache: Path, start: type[Server]
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
            python = client.ensure_env("wf", "flags", packages=["alpha==1.0"])
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
    for option in ("--host", "--port", "--root", "--workers", "--grace", "--find-links"):
        assert option in out
