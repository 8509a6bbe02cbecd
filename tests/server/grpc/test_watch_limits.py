"""gRPC Watch streams are bounded like the HTTP ones (issue 31, finding 7 and part 4).

A filter's ``names`` are capped as over HTTP (duplicates count); the tokenless
health Watch is capped per client address, not only server-wide; a watcher
that stops reading is cancelled at the write deadline, so it gives its thread back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import uv_envs
from tests.server.grpc.test_events_grpc import wait_for
from uv_envs_server import ServeOptions, create_server
from uv_envs_server._generated import uvenvs_events_pb2 as events_pb
from uv_envs_server._grpc.events import WATCH_PATH
from uv_envs_server._limits import MAX_EVENT_NAMES

if TYPE_CHECKING:
    from tests.server.conftest import OpenClient, Serve

DEADLINE = 0.5
PADDING = "x" * 2048
#: A small window, so a client that does not read stalls the server's sends soon.
STALLED_CHANNEL = [("grpc.http2.lookahead_bytes", 4096), ("grpc.http2.bdp_probe", 0)]


def _raw_watch(channel: grpc.Channel) -> Any:  # noqa: ANN401 - grpc's untyped multicallable
    return channel.unary_stream(
        WATCH_PATH,
        request_serializer=events_pb.WatchRequest.SerializeToString,
        response_deserializer=events_pb.Event.FromString,
    )


def test_duplicate_names_count_against_the_same_cap_as_over_http(
    serve: Serve, open_client: OpenClient, fake_manager: uv_envs.EnvManager
) -> None:
    client = open_client(serve(fake_manager), timeout=30)
    with pytest.raises(uv_envs.InvalidInput, match=f"at most {MAX_EVENT_NAMES}"):
        next(client.watch(names=["EnvironmentCreated"] * 5000))
    with pytest.raises(uv_envs.InvalidInput):
        next(client.watch(names=["EnvironmentCreated"] * (MAX_EVENT_NAMES + 1)))
    assert fake_manager.events.stats.subscribers == 0
    # Up to the cap, duplicates are one name.
    watching = client.watch(names=["EnvironmentCreated"] * MAX_EVENT_NAMES)
    wait_for(lambda: fake_manager.events.stats.subscribers == 1)
    fake_manager.create(uv_envs.EnvKey("wf", "node"), packages=["alpha"])
    assert next(watching).name == "EnvironmentCreated"
    watching.close()


def test_one_client_cannot_take_every_health_watch(fake_manager: uv_envs.EnvManager) -> None:
    server, port = create_server(fake_manager, ServeOptions(max_workers=16))  # 4 health places
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)
            first = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
            assert next(first).status == health_pb2.HealthCheckResponse.SERVING
            for _ in range(3):  # places are left server-wide, none for this client
                second = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
                with pytest.raises(grpc.RpcError) as info:
                    next(second)
                assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "this client" in (info.value.details() or "")
            first.cancel()
            # Its place comes back once the server sees the cancel.
            for _ in range(200):
                again = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
                try:
                    assert next(again).status == health_pb2.HealthCheckResponse.SERVING
                except grpc.RpcError:
                    time.sleep(0.05)
                    continue
                again.cancel()
                break
            else:
                pytest.fail("a cancelled health Watch never gave its client's place back")
    finally:
        server.stop(None).wait()
        server.executor.shutdown(wait=True)


def test_watchers_that_never_read_give_their_threads_back(fake_manager: uv_envs.EnvManager) -> None:
    # One thread for watchers beside one worker: a stuck Watch would hold it for good.
    options = ServeOptions(max_workers=1, max_watchers=2, write_timeout=DEADLINE)
    server, port = create_server(fake_manager, options)
    server.start()
    stream = fake_manager.events
    stream.configure(replay=1)
    held: list[tuple[grpc.Channel, Any]] = []
    try:
        for _ in range(20):
            for _ in range(2):
                channel = grpc.insecure_channel(f"127.0.0.1:{port}", STALLED_CHANNEL)
                call = _raw_watch(channel)(events_pb.WatchRequest(), timeout=120)
                held.append((channel, call))  # started, never read
            wait_for(lambda: stream.stats.subscribers == 2)
            for _ in range(5000):
                stream.progress(uv_envs.Phase.INSTALLING, {}, {"padding": PADDING})
                if stream.stats.subscribers == 0:
                    break
            wait_for(lambda: stream.stats.subscribers == 0)
        # Both watcher threads are free again: a reading watcher is served.
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reader = _raw_watch(channel)(events_pb.WatchRequest(), timeout=30)
            wait_for(lambda: stream.stats.subscribers == 1)
            stream.progress(uv_envs.Phase.INSTALLING, {}, {})
            assert next(reader).name == "OperationProgress"
            reader.cancel()
    finally:
        for channel, call in held:
            call.cancel()
            channel.close()
        server.stop(None).wait()
        server.executor.shutdown(wait=True)
