"""Create answers come from one core call: no status-then-create, no ensure-then-export.

``POST /v1/envs`` decides 201 or 200 from what the call itself did, and gRPC
``CreateEnv`` reads the env's pyproject.toml under the lock the ensure held,
so a delete landing between two calls can no longer turn a success into an
error.
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
import httpx

import uv_envs
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc

if TYPE_CHECKING:
    from .conftest import HttpServe, Serve

BODY = {"workflow_id": "wf", "node_id": "node", "version_id": "v1", "packages": ["alpha"]}


class CountingManager:
    """Passes every call to a real manager and counts the calls by method name."""

    def __init__(self, inner: uv_envs.EnvManager) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - whatever the manager has
        value = getattr(self.inner, name)
        if not callable(value):
            return value

        def counted(*args: object, **kwargs: object) -> object:
            with self._lock:
                self.calls[name] += 1
            return value(*args, **kwargs)

        return counted

    def take(self) -> dict[str, int]:
        with self._lock:
            taken = dict(self.calls)
            self.calls.clear()
        return taken


def test_http_create_answers_201_then_200_from_one_core_call(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    counting = CountingManager(fake_manager)
    server = http_serve(counting)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        made = http.post("/v1/envs", json=BODY)
        assert made.status_code == 201, made.text
        assert counting.take() == {"provision": 1}
        again = http.post("/v1/envs", json=BODY)
        assert again.status_code == 200
        assert again.json() == made.json()
        assert counting.take() == {"provision": 1}
        other = http.post("/v1/envs", json={**BODY, "packages": ["beta"]})
        assert other.status_code == 409
        assert counting.take() == {"provision": 1}


def test_grpc_create_env_is_one_core_call(serve: Serve, fake_manager: uv_envs.EnvManager) -> None:
    counting = CountingManager(fake_manager)
    request = pb.CreateEnvRequest(
        workflow_id="wf", node_id="node", version_id="v1", packages=["alpha"]
    )
    with grpc.insecure_channel(serve(counting)) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
        answer = stub.CreateEnv(request, timeout=30)
    assert counting.take() == {"provision": 1}
    assert answer.status == "READY"
    key = uv_envs.EnvKey("wf", "node", "v1")
    assert answer.pyproject_toml == fake_manager.export(key).pyproject_toml


def test_deletes_racing_create_env_never_fail_it(
    serve: Serve, fake_manager: uv_envs.EnvManager
) -> None:
    # 4 threads create one key while 2 delete it. Before CreateEnv was one core
    # call, a delete between ensure and export failed a few creates in 240.
    creates_per_thread, creating, deleting = 25, 4, 2
    request = pb.CreateEnvRequest(workflow_id="wf", node_id="race", packages=["alpha"])
    done = threading.Event()
    answers: list[pb.CreateEnvResponse] = []
    deleted: Counter[str] = Counter()

    with grpc.insecure_channel(serve(fake_manager, max_workers=8)) as channel:
        stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)

        def create() -> None:
            # A failed CreateEnv raises its RpcError, out of creator.result() below.
            answers.extend(stub.CreateEnv(request, timeout=60) for _ in range(creates_per_thread))

        def delete() -> None:
            while not done.is_set():
                answer = stub.DeleteEnv(pb.DeleteEnvRequest(workflow_id="wf", node_id="race"))
                deleted[answer.status] += 1

        with futures.ThreadPoolExecutor(creating + deleting) as pool:
            deleters = [pool.submit(delete) for _ in range(deleting)]
            creators: list[futures.Future[None]] = [pool.submit(create) for _ in range(creating)]
            try:
                for creator in creators:
                    creator.result()
            finally:
                done.set()
            for deleter in deleters:
                deleter.result()

    assert len(answers) == creates_per_thread * creating
    assert all(answer.status == "READY" for answer in answers)
    assert all('"alpha"' in answer.pyproject_toml for answer in answers)
    assert deleted["DELETED"] > 0, "the deletes raced nothing"
