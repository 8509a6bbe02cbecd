"""``uvenvs.v1.Events/Watch``: live events over gRPC from a real server on loopback."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

import uv_envs
from uv_envs import EnvKey
from uv_envs_server import REQUEST_ID_KEY, RemoteError, ServeOptions
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import uvenvs_events_pb2 as events_pb

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.server.conftest import OpenClient, Serve

KEY = EnvKey("wf", "node", "v1")
WAIT = 60.0
TOKEN = "watch-Token_42"  # noqa: S105 - a test token for a loopback server


def wait_for(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds, on an event with a generous timeout (never timed)."""
    done = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("the condition never held")


def until(events: Iterator[uv_envs.StreamEvent], name: str) -> list[uv_envs.StreamEvent]:
    seen = []
    for event in events:
        seen.append(event)
        if event.name == name:
            return seen
    raise AssertionError(f"the stream ended before {name}: {[e.name for e in seen]}")


def test_a_watch_sees_a_real_create_started_progress_created_in_order(
    serve: Serve, open_client: OpenClient, manager: uv_envs.EnvManager
) -> None:
    target = serve(manager)
    client = open_client(target, timeout=120)
    # One watcher follows the create by its request id, one follows another workflow.
    mine = client.watch(operation_id="create-req-1")
    others = client.watch(workflow_id="other")
    wait_for(lambda: manager.events.stats.subscribers == 2)
    with grpc.insecure_channel(target) as channel:
        create = channel.unary_unary(
            "/envmanager.EnvManagerService/CreateEnv",
            request_serializer=pb.CreateEnvRequest.SerializeToString,
            response_deserializer=pb.CreateEnvResponse.FromString,
        )
        request = pb.CreateEnvRequest(
            workflow_id="wf", node_id="node", version_id="v1", packages=["alpha<2"]
        )
        answer: Any = create(request, timeout=120, metadata=((REQUEST_ID_KEY, "create-req-1"),))
    assert answer.status == "READY"
    seen = until(mine, "EnvironmentCreated")
    names = [e.name for e in seen]
    assert names[0] == "EnvironmentCreationStarted"
    assert "OperationProgress" in names
    phases = [e.phase for e in seen if e.phase is not None]
    assert phases.index(uv_envs.Phase.RESOLVING) < phases.index(uv_envs.Phase.INSTALLING)
    assert any(e.counts.get("installed") for e in seen)
    assert {e.key for e in seen} == {KEY}
    assert {e.operation_id for e in seen} == {"create-req-1"}
    sequences = [e.sequence for e in seen]
    assert sequences == sorted(sequences)
    # The other watcher's first event is of its own workflow: the create was filtered out.
    manager.delete(EnvKey("other", "node"))  # nothing there: no event
    manager.create(EnvKey("other", "node"), packages=["gamma"])
    first = next(others)
    assert first.key == EnvKey("other", "node")
    assert first.name == "EnvironmentCreationStarted"


def test_resume_after_a_sequence_replays_what_was_missed(
    serve: Serve, open_client: OpenClient, fake_manager: uv_envs.EnvManager
) -> None:
    client = open_client(serve(fake_manager), timeout=30)
    fake_manager.create(KEY, packages=["alpha"])
    last = fake_manager.events.last_sequence
    fake_manager.delete(KEY)
    replayed = next(client.watch(after=last))
    assert replayed.name == "EnvironmentDeleted"
    assert replayed.sequence == last + 1
    # Past the replay buffer the first item says how many are gone.
    fake_manager.events.configure(replay=1)
    gap = next(client.watch(after=0))
    assert gap.name == "ReplayGap"
    assert gap.counts["missed"] == last


def test_a_watcher_that_never_reads_is_cut_off_and_does_not_stop_a_create(
    serve: Serve, open_client: OpenClient, fake_manager: uv_envs.EnvManager
) -> None:
    fake_manager.events.configure(buffer=4)
    client = open_client(serve(fake_manager), timeout=30)
    stuck = client.watch()  # started, never read until the create is done
    wait_for(lambda: fake_manager.events.stats.subscribers == 1)
    for number in range(5000):  # more than gRPC's flow-control window holds
        fake_manager.events.publish(uv_envs.EnvironmentDeleted(EnvKey("wf", f"n{number}")))
    environment = fake_manager.create(KEY, packages=["alpha"])
    assert environment.status is uv_envs.EnvStatus.READY
    stats = fake_manager.events.stats
    assert stats.cut_off == 1
    assert stats.subscribers == 0
    events = list(stuck)
    assert events[-1].ends_stream
    assert events[-1].counts["dropped"] >= 1
    assert events[-1].counts["resume_after"] == events[-2].sequence


def test_health_and_reflection_list_the_events_service(
    serve: Serve, open_client: OpenClient, fake_manager: uv_envs.EnvManager
) -> None:
    target = serve(fake_manager)
    assert open_client(target).health("uvenvs.v1.Events") == "SERVING"
    with grpc.insecure_channel(target) as channel:
        call = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        request = reflection_pb2.ServerReflectionRequest
        answers: list[Any] = list(
            call(
                iter(
                    [request(list_services=""), request(file_containing_symbol="uvenvs.v1.Events")]
                ),
                timeout=30,
            )
        )
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"envmanager.EnvManagerService", "uvenvs.v1.Events"} <= names
    described = answers[1].file_descriptor_response.file_descriptor_proto[0]
    assert described == events_pb.DESCRIPTOR.serialized_pb


def test_the_token_applies_to_watch(
    serve: Serve, open_client: OpenClient, fake_manager: uv_envs.EnvManager
) -> None:
    target = serve(fake_manager, token=TOKEN)
    with pytest.raises(RemoteError) as info:
        next(open_client(target).watch())
    assert info.value.code is grpc.StatusCode.UNAUTHENTICATED
    assert fake_manager.events.stats.subscribers == 0
    watching = open_client(target, token=TOKEN).watch()
    wait_for(lambda: fake_manager.events.stats.subscribers == 1)
    fake_manager.create(KEY, packages=["alpha"])
    assert next(watching).name == "EnvironmentCreationStarted"


def test_caps_per_server_and_per_client_and_bad_filters(
    serve: Serve, open_client: OpenClient, fake_manager: uv_envs.EnvManager
) -> None:
    client = open_client(serve(fake_manager, max_watchers=3, max_watchers_per_client=2))
    first, second = client.watch(), client.watch()
    wait_for(lambda: fake_manager.events.stats.subscribers == 2)
    with pytest.raises(uv_envs.TooManySubscribers, match="this client"):
        next(client.watch())
    first.close()  # closing the iterator cancels the call and frees the place
    wait_for(lambda: fake_manager.events.stats.subscribers == 1)
    third = client.watch()
    wait_for(lambda: fake_manager.events.stats.subscribers == 2)
    with pytest.raises(uv_envs.InvalidInput):
        next(client.watch(names=["NoSuchEvent"]))
    with pytest.raises(uv_envs.InvalidInput):
        next(client.watch(workflow_id="../up"))
    with pytest.raises(uv_envs.InvalidInput):
        next(client.watch(operation_id="x" * 200))
    assert fake_manager.events.stats.subscribers == 2
    second.close()
    third.close()


def test_the_server_wide_cap(
    serve: Serve, open_client: OpenClient, fake_manager: uv_envs.EnvManager
) -> None:
    client = open_client(serve(fake_manager, max_watchers=1))
    watching = client.watch()
    wait_for(lambda: fake_manager.events.stats.subscribers == 1)
    with pytest.raises(uv_envs.TooManySubscribers, match="this server"):
        next(client.watch())
    watching.close()


@pytest.mark.parametrize("field", ["max_watchers", "max_watchers_per_client"])
def test_watcher_caps_are_at_least_one(field: str) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ServeOptions(**{field: 0})  # type: ignore[arg-type]


def test_stopping_the_server_ends_open_watches(
    open_client: OpenClient, fake_manager: uv_envs.EnvManager
) -> None:
    from uv_envs_server import create_server

    server, port = create_server(fake_manager, ServeOptions())
    server.start()
    try:
        watching = open_client(f"127.0.0.1:{port}").watch()
        wait_for(lambda: fake_manager.events.stats.subscribers == 1)
        # A grace far longer than the wait below: the watch must not hold the stop.
        stopped = server.stop(600)
        assert stopped.wait(WAIT)
        assert list(watching) == []
    finally:
        server.stop(None)
        server.executor.shutdown(wait=True)
