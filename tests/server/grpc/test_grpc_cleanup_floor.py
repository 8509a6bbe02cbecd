"""Cleanup over the wire never deletes every env by default (issue 9, part c).

``CleanupRequest.idle_hours`` left unset reads as 0 in proto3. The server keeps
a minimum idle time (``--min-cleanup-idle-hours``, 1 hour by default) below
which Cleanup deletes nothing; 0 is the explicit opt-in for "everything".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import grpc
import pytest

import uv_envs
from tests.support.server_process import source_env
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc
from uv_envs_server._grpc.servicer import EnvManagerServicer
from uv_envs_server._limits import DEFAULT_MIN_CLEANUP_IDLE_HOURS

if TYPE_CHECKING:
    from tests.server.conftest import OpenStub, Serve


def _age(manager: uv_envs.EnvManager, key: uv_envs.EnvKey, hours: float) -> None:
    """Make the env look last used ``hours`` ago (record and hand-out stamp)."""
    then = time.time() - hours * 3600
    environment = manager.get(key)
    manager._core.services.metadata.save(attrs.evolve(environment, updated_at=then))
    os.utime(environment.env_path / ".last-used", (then, then))


def test_the_default_minimum_is_one_hour() -> None:
    assert DEFAULT_MIN_CLEANUP_IDLE_HOURS == 1.0


@pytest.mark.parametrize("request_kwargs", [{}, {"idle_hours": 0}], ids=["unset", "zero"])
def test_an_unset_or_zero_idle_hours_keeps_envs_used_within_the_minimum(
    serve: Serve, fake_manager: uv_envs.EnvManager, request_kwargs: dict[str, int]
) -> None:
    fresh = uv_envs.EnvKey("wf", "fresh")
    stale = uv_envs.EnvKey("wf", "stale")
    fake_manager.ensure(fresh, packages=["alpha"])
    fake_manager.ensure(stale, packages=["alpha"])
    _age(fake_manager, stale, hours=2)
    target = serve(fake_manager)
    with grpc.insecure_channel(target) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        cleaned = stub.Cleanup(pb.CleanupRequest(**request_kwargs), timeout=30)
    # The env used two hours ago goes; the one in use right now stays.
    assert list(cleaned.deleted) == ["wf/stale/"]
    assert fake_manager.status(fresh).status is uv_envs.EnvStatus.READY
    assert fake_manager.status(stale).status is uv_envs.EnvStatus.NOT_FOUND


def test_an_explicit_idle_hours_above_the_minimum_is_honoured(
    serve: Serve, open_stub: OpenStub, fake_manager: uv_envs.EnvManager
) -> None:
    key = uv_envs.EnvKey("wf", "n")
    fake_manager.ensure(key, packages=["alpha"])
    _age(fake_manager, key, hours=5)
    stub = open_stub(serve(fake_manager))
    assert list(stub.Cleanup(pb.CleanupRequest(idle_hours=6), timeout=30).deleted) == []
    assert list(stub.Cleanup(pb.CleanupRequest(idle_hours=4), timeout=30).deleted) == ["wf/n/"]


def test_a_minimum_of_zero_is_the_opt_in_for_everything(
    serve: Serve, open_stub: OpenStub, fake_manager: uv_envs.EnvManager
) -> None:
    key = uv_envs.EnvKey("wf", "n")
    fake_manager.ensure(key, packages=["alpha"])
    stub = open_stub(serve(fake_manager, min_cleanup_idle_hours=0))
    assert list(stub.Cleanup(pb.CleanupRequest(idle_hours=0), timeout=30).deleted) == ["wf/n/"]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_a_bad_minimum_is_refused(fake_manager: uv_envs.EnvManager, bad: float) -> None:
    with pytest.raises(ValueError, match="min_cleanup_idle_hours"):
        EnvManagerServicer(fake_manager, min_cleanup_idle_hours=bad)


@pytest.mark.parametrize("bad", ["-1", "nan"])
def test_the_cli_refuses_a_bad_minimum_with_exit_2(tmp_path: Path, bad: str) -> None:
    env = source_env(UV_ENVS_ROOT=str(tmp_path / "root"))
    result = subprocess.run(
        [sys.executable, "-m", "uv_envs_server", "--port", "0", f"--min-cleanup-idle-hours={bad}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "min_cleanup_idle_hours" in result.stderr
    assert "Traceback" not in result.stderr
