"""Fixtures for the gRPC server tests: servers on ephemeral loopback ports, and clients.

The fixtures ``manager`` (real uv against the test wheelhouse) and
``fake_manager`` (the fake uv) come from ``tests/conftest.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
import pytest

import uv_envs
from uv_envs.testing import FakePythonFinder
from uv_envs_server import EnvManagerClient, EnvManagerServer, create_server

if TYPE_CHECKING:
    from pathlib import Path

    from uv_envs._uv import UvInvocation, UvResult

Serve = Callable[..., str]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start a server on 127.0.0.1:<free port> for a manager; returns its target."""
    started: list[EnvManagerServer] = []

    def start(manager: uv_envs.EnvManager, **kwargs: Any) -> str:
        server, port = create_server("127.0.0.1:0", manager=manager, **kwargs)
        server.start()
        started.append(server)
        return f"127.0.0.1:{port}"

    yield start
    for server in started:
        server.stop(None).wait()
        server.executor.shutdown(wait=True)


@pytest.fixture
def open_client() -> Iterator[Callable[..., EnvManagerClient]]:
    """Open clients that are closed after the test."""
    clients: list[EnvManagerClient] = []

    def make(target: str, **kwargs: Any) -> EnvManagerClient:
        client = EnvManagerClient(target, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def fake_target(serve: Serve, fake_manager: uv_envs.EnvManager) -> str:
    """A server on the fake uv: fast, no real installs."""
    return serve(fake_manager)


@pytest.fixture
def fake_client(fake_target: str, open_client: Callable[..., EnvManagerClient]) -> EnvManagerClient:
    return open_client(fake_target, timeout=30)


@pytest.fixture
def channel(fake_target: str) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(fake_target) as channel:
        yield channel


class GatedExecutor:
    """Wraps a uv executor; every uv call waits until ``release`` is set."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def run(self, invocation: UvInvocation) -> UvResult:
        self.entered.set()
        if not self.release.wait(timeout=60):
            raise AssertionError("the gate was never opened")
        result: UvResult = self.inner.run(invocation)
        return result


@pytest.fixture
def gated_manager(
    tmp_path: Path, fake_uv: Any
) -> Callable[..., tuple[uv_envs.EnvManager, GatedExecutor]]:
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
