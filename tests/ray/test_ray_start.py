"""How test Ray clusters start (tests/support/ray_start.py): again once, saying why.

The start loop (30 single-node starts in a row, no retry) is the check that
Ray's clusters start every time on this machine; ``.ci/run`` runs it with the
rest of the suite.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.ray_start import (
    SOCKET_PATH_MAX,
    ClusterStartFailed,
    local_cluster,
    short_folder,
    started_cluster,
)

LOOP_STARTS = 30


def need_ray() -> None:
    """Skip where Ray is not installed; fail instead under UV_ENVS_REQUIRE_RAY."""
    if importlib.util.find_spec("ray") is None:
        if os.environ.get("UV_ENVS_REQUIRE_RAY"):
            pytest.fail("UV_ENVS_REQUIRE_RAY is set but ray is not installed")
        pytest.skip("ray is not installed (pip install -e '.[ray]')")


def test_a_failed_start_is_tried_once_more_in_a_clean_folder() -> None:
    bases: list[Path] = []
    stopped: list[Path] = []

    def start(base: Path, stack: contextlib.ExitStack[Any]) -> Path:
        bases.append(base)
        assert sorted(p.name for p in base.iterdir()) == ["ray"], "a used folder"
        (base / "leftover").touch()
        stack.callback(stopped.append, base)
        if len(bases) == 1:
            msg = "The current node timed out during startup."
            raise Exception(msg)  # noqa: TRY002 - what Ray raises
        return base

    with started_cluster("u", start) as base:
        assert os.environ["RAY_TMPDIR"] == str(base)
        assert base.parent == Path(tempfile.gettempdir())
    assert len(bases) == 2
    assert bases[0] != bases[1]
    assert stopped == bases  # the failed start's teardown ran too
    assert not any(b.exists() for b in bases)


def test_two_failed_starts_say_why_and_leave_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_TMPDIR", "/elsewhere")
    bases: list[Path] = []

    def start(base: Path, _: contextlib.ExitStack[Any]) -> None:
        bases.append(base)
        logs = base / "t" / "session_1" / "logs"
        logs.mkdir(parents=True)
        (logs / "gcs_server.out").write_text("listening\nRegisterNode request count: 0\n")
        raise RuntimeError(f"attempt in {base.name}")

    with pytest.raises(ClusterStartFailed) as failed, started_cluster("u", start):
        pytest.fail("a cluster that did not start was used")
    text = str(failed.value)
    assert "in 2 attempts" in text
    assert f"attempt 1 (0 s): RuntimeError('attempt in {bases[0].name}')" in text
    assert f"attempt 2 (0 s): RuntimeError('attempt in {bases[1].name}')" in text
    assert "RegisterNode request count: 0" in text  # the GCS log's tail
    assert "no raylet log: the raylet never started or died before opening it" in text
    assert "--- load average" in text
    assert os.environ["RAY_TMPDIR"] == "/elsewhere"
    assert not any(b.exists() for b in bases)


def test_an_error_in_the_body_is_not_a_failed_start() -> None:
    starts: list[Path] = []

    def start(base: Path, _: contextlib.ExitStack[Any]) -> Path:
        starts.append(base)
        return base

    with pytest.raises(KeyError), started_cluster("u", start):
        raise KeyError("in the test")
    assert len(starts) == 1
    assert not starts[0].exists()


def test_a_temp_folder_too_long_for_rays_sockets_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    deep = tmp_path / ("d" * (SOCKET_PATH_MAX - len(str(tmp_path))))
    deep.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with pytest.raises(ClusterStartFailed, match="too long for Ray's socket paths"):
        short_folder("r")
    assert list(deep.iterdir()) == []


@pytest.mark.ray
def test_a_start_on_a_taken_port_fails_saying_why() -> None:
    need_ray()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        def start(base: Path, stack: contextlib.ExitStack[Any]) -> object:
            return local_cluster(base, stack, {}, node_manager_port=port)

        with pytest.raises(ClusterStartFailed) as failed, started_cluster("p", start, attempts=1):
            pytest.fail("started on a taken port")
    text = str(failed.value)
    assert "The current node timed out during startup" in text  # Ray's words
    assert "raylet (pid " in text  # the raylet's exit status
    assert "exited with" in text
    assert "--- t/session_" in text
    assert "raylet.err" in text
    assert str(port) in text


@pytest.mark.slow
@pytest.mark.ray
def test_thirty_single_node_starts_in_a_row_all_succeed(
    record_property: Callable[[str, object], None],
) -> None:
    need_ray()

    def start(base: Path, stack: contextlib.ExitStack[Any]) -> object:
        # Imported here: importing Ray sets RAY_CLIENT_MODE, which the cluster's end puts back.
        from uv_envs.ray import plugin_config

        env = {"RAY_RUNTIME_ENV_PLUGINS": plugin_config(), "UV_ENVS_ROOT": str(base / "n0")}
        return local_cluster(base, stack, env)

    failures = []
    took = []
    for index in range(LOOP_STARTS):
        began = time.monotonic()
        try:
            # No second attempt: every failed start counts.
            with started_cluster("l", start, attempts=1):
                pass
        except ClusterStartFailed as exc:
            failures.append(f"start {index}: {exc}")
        took.append(time.monotonic() - began)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    summary = (
        f"{LOOP_STARTS} starts, {len(failures)} failed, slowest {max(took):.1f} s, "
        f"total {sum(took):.0f} s, load {load} on {os.cpu_count()} CPUs"
    )
    record_property("ray_start_loop", summary)
    print(summary)  # shown by -rA: the figures CI ran at
    assert not failures, summary + "\n\n" + "\n\n".join(failures)


def test_the_clusters_processes_are_killed_and_only_those(tmp_path: Path) -> None:
    processes: list[subprocess.Popen[bytes]] = []

    def start(base: Path, _: contextlib.ExitStack[Any]) -> None:
        sleep = [sys.executable, "-c", "import time; time.sleep(600)"]
        # A Ray daemon names its session folder; a neighbour's folder may share a prefix.
        processes.append(subprocess.Popen([*sleep, f"--log_dir={base}/t/logs"]))
        processes.append(subprocess.Popen([*sleep, f"{base}x"]))

    try:
        with started_cluster("u", start):
            pass
        mine, neighbours = processes
        assert mine.wait(timeout=10) == -signal.SIGKILL
        assert neighbours.poll() is None
    finally:
        for process in processes:
            process.kill()
            process.wait()
