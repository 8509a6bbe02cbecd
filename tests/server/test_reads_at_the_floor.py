"""Reads answer from what is on disk now, with a few syscalls (issue 33, item 2).

Status, get and the ensure of an env that exists, through the library, HTTP
(``/envs/{w}/{n}`` and ``/v1``) and gRPC, start no process and walk no folder;
and a record parsed once is never answered after another process replaced it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc
import httpx
import pytest

import uv_envs
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc

if TYPE_CHECKING:
    from .conftest import HttpServe, Serve

KEY = uv_envs.EnvKey("wf", "node")
STATUS = pb.GetEnvStatusRequest(workflow_id="wf", node_id="node")
CREATE = pb.CreateEnvRequest(workflow_id="wf", node_id="node", packages=["alpha"])


class Spawns:
    """Counts, from any thread, processes started and folders listed while it is on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.on = False
        execute_child = subprocess.Popen._execute_child  # type: ignore[attr-defined]  # every spawn
        scandir = os.scandir

        def counted_child(popen: subprocess.Popen[Any], args: Any, *rest: Any) -> Any:  # noqa: ANN401 - Popen's own
            self._count(f"process {args!r}")
            return execute_child(popen, args, *rest)

        def counted_scandir(path: Any = ".") -> Any:  # noqa: ANN401 - os.scandir's own
            self._count(f"scandir {path}")
            return scandir(path)

        monkeypatch.setattr(subprocess.Popen, "_execute_child", counted_child)
        monkeypatch.setattr(os, "scandir", counted_scandir)

    def _count(self, what: str) -> None:
        if self.on:
            with self._lock:
                self.seen[what] += 1

    def during(self, call: Callable[[], object], times: int = 3) -> dict[str, int]:
        self.on = True
        try:
            for _ in range(times):
                call()
        finally:
            self.on = False
        return dict(self.seen)


@pytest.fixture
def env(manager: uv_envs.EnvManager) -> uv_envs.Environment:
    return manager.create(KEY, packages=["alpha"])


@pytest.fixture
def http(http_serve: HttpServe, manager: uv_envs.EnvManager) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_serve(manager).url, timeout=60) as client:
        yield client


@pytest.fixture
def stub(serve: Serve, manager: uv_envs.EnvManager) -> Iterator[Any]:
    with grpc.insecure_channel(serve(manager)) as channel:
        yield env_manager_pb2_grpc.EnvManagerServiceStub(channel)


def _ok(response: httpx.Response) -> httpx.Response:
    return response.raise_for_status()


READS: dict[str, Callable[[uv_envs.EnvManager, httpx.Client, Any], object]] = {
    "status": lambda m, _h, _g: m.status(KEY),
    "get": lambda m, _h, _g: m.get(KEY),
    "runtime_env": lambda m, _h, _g: m.runtime_env(KEY),
    "ensure, same spec": lambda m, _h, _g: m.ensure(KEY, packages=["alpha"]),
    "GET /envs/{w}/{n}": lambda _m, h, _g: _ok(h.get("/envs/wf/node")),
    "GET /v1/envs/{w}/{n}/@": lambda _m, h, _g: _ok(h.get("/v1/envs/wf/node/@")),
    "PUT /v1/envs/{w}/{n}/@": lambda _m, h, _g: _ok(
        h.put("/v1/envs/wf/node/@", json={"packages": ["alpha"]})
    ),
    "GetEnvStatus": lambda _m, _h, g: g.GetEnvStatus(STATUS, timeout=30),
    "CreateEnv, same spec": lambda _m, _h, g: g.CreateEnv(CREATE, timeout=30),
}


@pytest.mark.parametrize("door", list(READS))
def test_a_read_starts_no_process_and_lists_no_folder(
    door: str,
    env: uv_envs.Environment,
    manager: uv_envs.EnvManager,
    http: httpx.Client,
    stub: Any,  # noqa: ANN401 - the generated stub is untyped
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    read = READS[door]
    read(manager, http, stub)  # the first answer may set up what later ones reuse
    assert Spawns(monkeypatch).during(lambda: read(manager, http, stub)) == {}


def _add_from_another_process(settings: uv_envs.Settings, package: str) -> None:
    """``uv-envs add`` in a process of its own, on the same root."""
    environ = {
        **os.environ,
        "UV_ENVS_CACHE_DIR": str(settings.cache_dir),
        "UV_ENVS_BACKGROUND_BYTECODE": "0",
    }
    command = [sys.executable, "-m", "uv_envs", "--root", str(settings.root), "--ray", "off"]
    command += ["--no-index"]
    command += [*("--find-links", *settings.index.find_links), "add", "wf", "node", "-p", package]
    subprocess.run(command, check=True, env=environ, capture_output=True, timeout=300)


def test_reads_see_another_process_change_at_once(
    env: uv_envs.Environment,
    manager: uv_envs.EnvManager,
    http: httpx.Client,
    stub: Any,  # noqa: ANN401 - the generated stub is untyped
) -> None:
    # Every door reads the record first, so whatever it keeps from that read is warm.
    assert manager.get(KEY).generation == env.generation
    assert http.get("/v1/envs/wf/node/@").json()["environment"]["generation"] == env.generation
    assert http.get("/envs/wf/node").status_code == 200
    assert stub.GetEnvStatus(STATUS, timeout=30).status == "READY"

    _add_from_another_process(manager.settings, "beta")

    now = manager.get(KEY)
    assert now.generation > env.generation
    assert "beta>=1.0" in now.packages
    assert manager.status(KEY).environment == now
    assert manager.runtime_env(KEY)["pinned_python_path"] == str(now.pinned_python_path)
    v1 = http.get("/v1/envs/wf/node/@").json()["environment"]
    assert v1["generation"] == now.generation
    assert "beta>=1.0" in v1["spec"]["packages"]
    grpc_record = json.loads(stub.GetEnvStatus(STATUS, timeout=30).metadata_json)
    assert grpc_record["generation"] == now.generation
    # The digest of the new generation, on every door.
    assert now.digest.startswith("sha256:")
    assert grpc_record["digest"] == v1["digest"] == now.digest


def test_reads_see_another_process_delete_at_once(
    env: uv_envs.Environment, manager: uv_envs.EnvManager, http: httpx.Client
) -> None:
    assert manager.status(KEY).status is uv_envs.EnvStatus.READY
    command = [sys.executable, "-m", "uv_envs", "--root", str(manager.settings.root)]
    subprocess.run([*command, "delete", "wf", "node"], check=True, capture_output=True)
    assert manager.status(KEY).status is uv_envs.EnvStatus.NOT_FOUND
    assert http.get("/envs/wf/node").status_code == 404
    with pytest.raises(uv_envs.EnvironmentNotFound):
        manager.get(KEY)
