"""The gRPC server bounds how long a connection lives (issue 18).

The defaults (docs/grpc.md, ``KEEPALIVE_OPTIONS``) are minutes and hours; the
test shortens the idle limit through ``channel_options``, which come after
the defaults, and watches the client's connection being closed by the server.
"""

from __future__ import annotations

import functools
import itertools
import threading
from typing import TYPE_CHECKING

import grpc

import uv_envs
from uv_envs_server import create_server
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated import env_manager_pb2_grpc
from uv_envs_server._grpc.server import KEEPALIVE_OPTIONS

if TYPE_CHECKING:
    from collections.abc import Iterator

IDLE_MS = 300


def test_the_defaults_never_cut_a_running_call_short() -> None:
    options = dict(KEEPALIVE_OPTIONS)
    # A create may run for many minutes: a connection's age limit gives its calls as long again.
    assert options["grpc.max_connection_age_grace_ms"] >= options["grpc.max_connection_age_ms"]
    assert options["grpc.keepalive_time_ms"] < options["grpc.max_connection_idle_ms"]


def _states(channel: grpc.Channel) -> Iterator[grpc.ChannelConnectivity]:
    seen: list[grpc.ChannelConnectivity] = []
    changed = threading.Condition()

    def record(state: grpc.ChannelConnectivity) -> None:
        with changed:
            seen.append(state)
            changed.notify_all()

    channel.subscribe(record)
    for index in itertools.count():
        with changed:
            changed.wait_for(functools.partial(_longer, seen, index), timeout=10)
            if len(seen) <= index:
                return
            state = seen[index]
        yield state


def _longer(seen: list[grpc.ChannelConnectivity], index: int) -> bool:
    return len(seen) > index


def test_an_idle_connection_is_closed_by_the_server(fake_manager: uv_envs.EnvManager) -> None:
    server, port = create_server(
        fake_manager, channel_options=[("grpc.max_connection_idle_ms", IDLE_MS)]
    )
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = env_manager_pb2_grpc.EnvManagerServiceStub(channel)
            stub.GetEnvStatus(pb.GetEnvStatusRequest(workflow_id="w", node_id="n"), timeout=10)
            states = _states(channel)
            assert grpc.ChannelConnectivity.READY in states
            # Nothing more is sent: the server closes the connection (GOAWAY) and
            # the channel drops back to IDLE, to reconnect on its next call.
            assert grpc.ChannelConnectivity.IDLE in states
    finally:
        server.stop(None).wait()
