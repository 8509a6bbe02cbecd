"""``uv-envs watch`` against real servers on loopback, over gRPC and over HTTP."""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import uv_envs
from uv_envs import EnvKey
from uv_envs._cli.main import main

from .grpc.test_events_grpc import WAIT, wait_for

if TYPE_CHECKING:
    from pathlib import Path

    import pytest

    from .conftest import HttpServe, Serve

KEY = EnvKey("wf", "node", "v1")
TOKEN = "cli-Token_42"  # noqa: S105 - a test token for a loopback server


def _watch(argv: list[str], manager: uv_envs.EnvManager) -> list[int]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(main(argv)), daemon=True)
    thread.start()
    wait_for(lambda: manager.events.stats.subscribers == 1)
    manager.create(KEY, packages=["alpha"])
    manager.create(EnvKey("other", "node"), packages=["alpha"])
    thread.join(WAIT)
    assert not thread.is_alive()
    return codes


def test_watch_prints_json_lines_over_grpc(
    serve: Serve,
    fake_manager: uv_envs.EnvManager,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    target = serve(fake_manager, token=TOKEN)
    (tmp_path / "token").write_text(TOKEN + "\n")
    argv = ["watch", "--server", target, "--token-file", str(tmp_path / "token")]
    argv += ["--workflow", "wf", "--name", "EnvironmentCreated", "--count", "1", "--json"]
    assert _watch(argv, fake_manager) == [0]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    event = json.loads(lines[0])
    assert event["name"] == "EnvironmentCreated"
    assert event["key"] == {"workflow_id": "wf", "node_id": "node", "version_id": "v1"}


def test_watch_prints_text_over_http(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager, capsys: pytest.CaptureFixture[str]
) -> None:
    server = http_serve(fake_manager)
    argv = ["watch", "--server", server.url, "--node", "node", "--count", "2"]
    assert _watch(argv, fake_manager) == [0]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("#1 EnvironmentCreationStarted wf/node/v1 [")
    assert lines[1].split()[1:3] == ["OperationProgress", "wf/node/v1"]


def test_watch_refused_without_the_token(
    serve: Serve, fake_manager: uv_envs.EnvManager, capsys: pytest.CaptureFixture[str]
) -> None:
    target = serve(fake_manager, token=TOKEN)
    assert main(["watch", "--server", target, "--count", "1"]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    assert main(["watch", "--server", target, "--count", "0"]) == 2
