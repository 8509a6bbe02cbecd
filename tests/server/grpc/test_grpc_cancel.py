"""Deadlines and cancelled calls roll back; status calls go on while a create runs.

The creates here use real uv on the test wheelhouse, through an executor that
holds ``uv sync`` until the call's cancel event is set, so a create can never
finish before its deadline: what the test sees is the rollback, not a race.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

import uv_envs
import uv_envs_server
from tests.server.conftest import rpc
from uv_envs import EnvKey, EnvManager, EnvStatus, SubprocessUvExecutor
from uv_envs._uv.commands import UvInvocation
from uv_envs._uv.executor import UvResult, find_uv_binary
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.server.conftest import GatedManager, Ident, OpenClient, OpenStub, Serve

IDENT: Ident = {"workflow_id": "wf", "node_id": "slow", "version_id": "v1"}
KEY = EnvKey("wf", "slow", "v1")


class HoldingExecutor:
    """Real uv, but ``uv sync`` waits (up to 60 s) for the operation's cancel event.

    ``armed`` turns the hold on and off; ``syncing`` is set when a sync is held,
    ``saw_cancel`` when the hold ended because the call was cancelled.
    """

    def __init__(self) -> None:
        self.inner = SubprocessUvExecutor(find_uv_binary())
        self.armed = True
        self.syncing = threading.Event()
        self.saw_cancel = threading.Event()

    def run(self, invocation: UvInvocation) -> UvResult:
        if self.armed and invocation.args[:1] == ("sync",):
            self.syncing.set()
            if invocation.cancel is not None and invocation.cancel.wait(60):
                self.saw_cancel.set()
        return self.inner.run(invocation)


@pytest.fixture
def held(
    settings: uv_envs.Settings, python_finder: uv_envs.InterpreterFinder
) -> tuple[EnvManager, HoldingExecutor]:
    executor = HoldingExecutor()
    return EnvManager(settings, executor=executor, python_finder=python_finder), executor


@pytest.fixture
def stub(
    serve: Serve, held: tuple[EnvManager, HoldingExecutor]
) -> Iterator[env_manager_pb2_grpc.EnvManagerServiceStub]:
    with grpc.insecure_channel(serve(held[0], max_workers=4)) as channel:
        yield env_manager_pb2_grpc.EnvManagerServiceStub(channel)


def _settled(manager: EnvManager, key: EnvKey = KEY, timeout: float = 30) -> EnvStatus:
    """Wait until the server is done with ``key`` (its audit record is finished)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = manager.operations(key.workflow_id, key.node_id).items
        if records and all(r.status != "RUNNING" for r in records):
            return manager.status(key).status
        time.sleep(0.02)
    raise AssertionError(f"the operation on {key} never finished")


def _logged(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 10) -> bool:
    """Wait for the server's access log line (written once the handler has returned)."""
    deadline = time.monotonic() + timeout
    while text not in caplog.text:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _assert_rolled_back(manager: EnvManager, executor: HoldingExecutor) -> None:
    assert _settled(manager) is EnvStatus.NOT_FOUND
    if executor.syncing.is_set():  # else a slow machine cancelled it earlier, in uv lock
        assert executor.saw_cancel.is_set(), "uv was held until the end: the cancel never came"
    assert not manager._core.services.layout.env_dir(KEY).exists()
    record = manager.operations("wf", "slow").items[0]
    assert record.status == "FAILED"
    assert "cancel" in (record.error or "").lower()


def test_a_deadline_shorter_than_the_create_rolls_it_back(
    stub: env_manager_pb2_grpc.EnvManagerServiceStub,
    held: tuple[EnvManager, HoldingExecutor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="uv_envs_server")
    manager, executor = held
    with pytest.raises(grpc.RpcError) as info:
        stub.CreateEnv(pb.CreateEnvRequest(**IDENT, packages=["alpha"]), timeout=10)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    _assert_rolled_back(manager, executor)
    assert _logged(caplog, "CreateEnv DEADLINE_EXCEEDED")
    answer = stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT), timeout=10)
    assert answer.status == "NOT_FOUND"

    # Nothing is left that would stop the same create from working afterwards.
    executor.armed = False
    created = stub.CreateEnv(pb.CreateEnvRequest(**IDENT, packages=["alpha"]), timeout=120)
    assert created.status == "READY"


def test_a_client_that_cancels_mid_create_leaves_no_env(
    stub: env_manager_pb2_grpc.EnvManagerServiceStub,
    held: tuple[EnvManager, HoldingExecutor],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="uv_envs_server")
    manager, executor = held
    call = stub.CreateEnv.future(pb.CreateEnvRequest(**IDENT, packages=["alpha"]), timeout=120)
    assert executor.syncing.wait(60), "the create never reached uv sync"
    assert call.cancel()
    _assert_rolled_back(manager, executor)
    assert _logged(caplog, "CreateEnv CANCELLED")
    answer = stub.GetEnvStatus(pb.GetEnvStatusRequest(**IDENT), timeout=10)
    assert answer.status == "NOT_FOUND"


def test_a_client_that_disconnects_mid_create_leaves_no_env(
    serve: Serve, held: tuple[EnvManager, HoldingExecutor]
) -> None:
    manager, executor = held
    target = serve(manager, max_workers=4)
    channel = grpc.insecure_channel(target)
    stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
    # Kept referenced: a dropped future cancels its call, which is the other test.
    call = stub.CreateEnv.future(pb.CreateEnvRequest(**IDENT, packages=["alpha"]), timeout=120)
    assert executor.syncing.wait(60), "the create never reached uv sync"
    channel.close()  # the whole connection goes away, as when the client process dies
    _assert_rolled_back(manager, executor)
    assert call.done()


_CLIENT_SCRIPT = """
import sys
from uv_envs import EnvKey
from uv_envs_server import EnvManagerClient
EnvManagerClient(sys.argv[1], timeout=120).ensure(EnvKey("wf", "slow", "v1"), ["alpha"])
"""


def test_a_client_process_killed_mid_create_leaves_no_env(
    serve: Serve, held: tuple[EnvManager, HoldingExecutor]
) -> None:
    manager, executor = held
    target = serve(manager, max_workers=4)
    source_root = Path(uv_envs_server.__file__).resolve().parents[1]
    path = os.pathsep.join(filter(None, [str(source_root), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    client = subprocess.Popen(
        [sys.executable, "-c", _CLIENT_SCRIPT, target],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert executor.syncing.wait(60), "the create never reached uv sync"
    finally:
        client.kill()  # SIGKILL: the socket closes with no goodbye from gRPC
        client.wait(30)
    _assert_rolled_back(manager, executor)


def test_a_cancelled_add_leaves_the_env_as_it_was(
    stub: env_manager_pb2_grpc.EnvManagerServiceStub, held: tuple[EnvManager, HoldingExecutor]
) -> None:
    manager, executor = held
    executor.armed = False
    stub.CreateEnv(pb.CreateEnvRequest(**IDENT, packages=["alpha"]), timeout=120)
    before = stub.ExportEnv(pb.ExportEnvRequest(**IDENT), timeout=10)
    executor.armed = True
    with pytest.raises(grpc.RpcError) as info:
        stub.AddDeps(pb.DepsRequest(**IDENT, packages=["gamma"]), timeout=3)
    assert info.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert _settled(manager) is EnvStatus.READY
    assert executor.saw_cancel.is_set() or not executor.syncing.is_set()
    after = stub.ExportEnv(pb.ExportEnvRequest(**IDENT), timeout=10)
    assert (after.pyproject_toml, after.uv_lock) == (before.pyproject_toml, before.uv_lock)
    assert manager.operations("wf", "slow").items[0].status == "FAILED"


def test_200_status_calls_are_answered_while_a_create_runs(
    serve: Serve, gated_manager: GatedManager, open_client: OpenClient, open_stub: OpenStub
) -> None:
    manager, gate = gated_manager()
    target = serve(manager)  # the default 16 workers
    client, status_stub = open_client(target, timeout=30), open_stub(target)
    gate.release.set()
    client.ensure(EnvKey("wf", "ready"), ["gamma"])
    gate.release.clear()
    gate.entered.clear()
    with futures.ThreadPoolExecutor(1) as creator:
        creating = creator.submit(client.ensure, EnvKey("wf", "slow"), ["alpha"])
        try:
            assert gate.entered.wait(30), "the create never reached uv"
            nodes = ["slow", "ready", "absent"]
            started = time.monotonic()
            with futures.ThreadPoolExecutor(16) as callers:
                answers = list(
                    callers.map(
                        lambda i: (
                            rpc(
                                status_stub.GetEnvStatus,
                                pb.GetEnvStatusRequest(workflow_id="wf", node_id=nodes[i % 3]),
                                timeout=20,
                            ).status
                        ),
                        range(200),
                    )
                )
            elapsed = time.monotonic() - started
            assert not creating.done(), "the create was still running throughout"
        finally:
            gate.release.set()
        assert str(creating.result(timeout=60).python_path).endswith("/.venv/bin/python")
    assert len(answers) == 200
    assert answers[0::3] == ["CREATING"] * 67
    assert answers[1::3] == ["READY"] * 67
    assert answers[2::3] == ["NOT_FOUND"] * 66
    assert elapsed < 20
    assert client.get(EnvKey("wf", "slow")).status is EnvStatus.READY
