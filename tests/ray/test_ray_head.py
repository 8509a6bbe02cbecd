"""The served cluster's head going away and coming back while ``uv-envs-server`` runs.

A real head (``ray start --head`` in a process group of its own) is killed and
started again on the same port: a new cluster, as Ray without GCS fault
tolerance makes it. The server is the only Ray driver (this test process
stays out of Ray: Ray would end it with the head). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

if importlib.util.find_spec("ray") is None:
    if os.environ.get("UV_ENVS_REQUIRE_RAY"):
        raise RuntimeError("UV_ENVS_REQUIRE_RAY is set but ray is not installed")
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

from tests.support.ray_namespaces import NamespacedCluster, ray_env
from tests.support.ray_start import started_cluster
from tests.support.server_process import SOURCE_ROOT
from uv_envs_server import EnvManagerClient
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated.env_manager_pb2_grpc import EnvManagerServiceStub
from uv_envs_server._grpc.health import CLUSTER_SERVICE

pytestmark = pytest.mark.ray

#: Seconds for anything the cluster or the server does (two busy cores).
TIMEOUT = 180.0
#: Ray ends a driver this long after its GCS went away, unless the driver raised it.
RAY_DRIVER_LIMIT = 60.0


class Served:
    """``uv-envs-server --ray-address`` on loopback ports, its stdout lines read as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uv_envs_server", "--port", "0", "--http-port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()
        self.target = self.line("uv-envs-server listening on ")
        self.url = self.line("uv-envs-server HTTP listening on ")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def line(self, prefix: str) -> str:
        """The address on the next stdout line, which must start with ``prefix``."""
        try:
            line = self._lines.get(timeout=TIMEOUT)
        except queue.Empty:
            pytest.fail(f"no {prefix!r} line from the server:\n{self.stop()}")
        assert line.startswith(prefix), line
        return line.rsplit(" ", 1)[1].strip()

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


@pytest.fixture
def head(wheelhouse: Path) -> Iterator[NamespacedCluster]:
    def start(base: Path, stack: contextlib.ExitStack[Any]) -> NamespacedCluster:
        private = base / "served"
        private.mkdir()
        python_path = [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]
        env = ray_env(
            base,
            {
                "UV_ENVS_FIND_LINKS": str(wheelhouse),
                "UV_ENVS_NO_INDEX": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
            },
        )
        env.pop("UV_ENVS_ROOT", None)
        cluster = NamespacedCluster(base=base, private=private, env=env)
        stack.enter_context(cluster.session())
        return cluster

    with started_cluster("rh", start) as cluster:
        yield cluster


def wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> float:
    """Seconds until ``condition()`` held; fails the test after ``timeout``."""
    began = time.monotonic()
    while not condition():
        if time.monotonic() - began > timeout:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.3)
    return time.monotonic() - began


def create(target: str, version: str) -> tuple[grpc.StatusCode, str, float]:
    """WTB's CreateEnv: its status code, its message and the seconds it took."""
    request = pb.CreateEnvRequest(
        workflow_id="wf", node_id="n", version_id=version, packages=["alpha"]
    )
    began = time.monotonic()
    with grpc.insecure_channel(target) as channel:
        try:
            EnvManagerServiceStub(channel).CreateEnv(request, timeout=TIMEOUT)
        except grpc.RpcError as exc:
            return exc.code(), str(exc.details()), time.monotonic() - began
    return grpc.StatusCode.OK, "", time.monotonic() - began


def status(target: str, version: str) -> tuple[str, str, list[dict[str, Any]]]:
    """The env's status, path and nodes (from ``metadata_json``, as WTB's stub reads it)."""
    request = pb.GetEnvStatusRequest(workflow_id="wf", node_id="n", version_id=version)
    with grpc.insecure_channel(target) as channel:
        answer = EnvManagerServiceStub(channel).GetEnvStatus(request, timeout=30)
    return answer.status, answer.env_path, json.loads(answer.metadata_json)["nodes"]


def health(target: str, service: str = CLUSTER_SERVICE) -> str:
    rpcs = EnvManagerClient(target)
    try:
        return rpcs.health(service, timeout=10)
    finally:
        rpcs.close()


def test_the_server_outlives_its_head_and_joins_it_again(head: NamespacedCluster) -> None:
    served = Served(
        [
            "--root", str(head.private / "root"),
            "--ray-address", head.address,
            "--ray-reconcile-seconds", "1",
            "--no-wheel-relay",
        ],
        head.env,
    )  # fmt: skip
    try:
        code, message, _ = create(served.target, "v1")
        assert code == grpc.StatusCode.OK, message
        assert health(served.target) == "SERVING"
        assert httpx.get(f"{served.url}/v1/health").json()["cluster"] == "SERVING"
        env_python = Path(status(served.target, "v1")[1]) / ".venv" / "bin" / "python"

        head.nodes[0].kill()  # the head and every Ray process of it
        gone = time.monotonic()
        wait_for(lambda: health(served.target) == "NOT_SERVING", "NOT_SERVING", 30)
        assert health(served.target, "") == "SERVING"  # the rest of the server serves
        shown = httpx.get(f"{served.url}/v1/health").json()
        assert shown["cluster"] == "NOT_SERVING"
        assert head.address in shown["cluster_error"]
        code, message, took = create(served.target, "v2")
        assert code == grpc.StatusCode.UNAVAILABLE
        assert head.address in message
        assert took < 10  # at once, not after Ray's timeouts
        body = {"workflow_id": "wf", "node_id": "n", "version_id": "v3", "packages": ["alpha"]}
        refused = httpx.post(f"{served.url}/v1/envs", json=body, timeout=30)
        assert refused.status_code == 503, refused.text
        assert head.address in refused.text
        assert status(served.target, "v1")[0] == "READY"
        ran = subprocess.run(
            [str(env_python), "-c", "import alpha"], capture_output=True, timeout=60, check=False
        )
        assert ran.returncode == 0, ran.stderr  # the env keeps working meanwhile

        # Past the 60 s after which Ray ends a driver that lost its GCS.
        time.sleep(max(0.0, RAY_DRIVER_LIMIT + 5 - (time.monotonic() - gone)))
        assert served.process.poll() is None, served.stop()
        assert health(served.target) == "NOT_SERVING"

        head.start_head()  # the same port: a new cluster
        # The server runs itself again (the same pid) on the same ports, and joins it.
        assert served.line("uv-envs-server listening on ") == served.target
        assert served.line("uv-envs-server HTTP listening on ") == served.url
        wait_for(lambda: health(served.target) == "SERVING", "SERVING again", 60)
        code, message, _ = create(served.target, "v2")
        assert code == grpc.StatusCode.OK, message

        def reconciled() -> bool:
            nodes = status(served.target, "v1")[2]
            return len(nodes) == 1 and nodes[0]["state"] == "present"

        wait_for(reconciled, "v1 present on the new cluster's node", 60)
    finally:
        stderr = served.stop()
    assert served.process.returncode == 0, stderr
