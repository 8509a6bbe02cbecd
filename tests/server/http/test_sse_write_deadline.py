"""Subscribers that stop reading lose their connection at the write deadline (issue 31, 6).

The trial: uvicorn has no write timeout, so a cut-off SSE subscriber that never
read kept its connection and its send queue: 20 rounds of 2 stalled clients
left 24 connections holding 38 MB, RSS 70 -> 142 MB. Here each stalled client
is a raw socket with a small receive buffer that asks for ``/v1/events`` and
never reads; the server must drop every one of them once the deadline has
passed, and its memory must not grow with the rounds.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import uv_envs
from tests.server.grpc.test_events_grpc import wait_for

if TYPE_CHECKING:
    from tests.server.conftest import HttpServe

DEADLINE = 0.5
ROUNDS = 20
STALLED = 2
#: Details of each event: with the events of one round, far more than the
#: socket buffers of a stalled connection hold, so its response must block.
PADDING = "x" * 2048
EVENTS_PER_ROUND = 3000
#: RSS growth allowed over the rounds: the trial grew 72 MB; a leak-free
#: server grows by its caches at most (a behaviour bound, not a timing one).
RSS_GROWTH = 40 * 1024 * 1024
_ESTABLISHED = "01"


def _established(port: int) -> int:
    """TCP connections in this process's network namespace whose local port is ``port``."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        lines = Path(table).read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            count += local_port == port and fields[3] == _ESTABLISHED
    return count


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def _stalled_subscriber(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connect, so the window the server sees is small from the start.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
    return sock


def test_stalled_subscribers_are_disconnected_and_memory_stays_flat(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    fake_manager.events.configure(replay=1)  # the replay buffer would hold the padding
    server = http_serve(fake_manager, write_timeout=DEADLINE)
    stream = fake_manager.events
    held: list[socket.socket] = []  # never read, never closed until the end
    baseline = 0
    try:
        for round_number in range(ROUNDS):
            held += [_stalled_subscriber(server.port) for _ in range(STALLED)]
            wait_for(lambda: stream.stats.subscribers == STALLED)
            # Until both are gone: cut off (their buffers overflowed while their
            # responses waited for the socket) or dropped at the deadline first.
            for _ in range(EVENTS_PER_ROUND):
                stream.progress(uv_envs.Phase.INSTALLING, {}, {"padding": PADDING})
                if stream.stats.subscribers == 0:
                    break
            wait_for(lambda: stream.stats.subscribers == 0)
            # Neither counts against the caps any more; their connections must go too.
            wait_for(lambda: _established(server.port) == 0)
            if round_number == 1:  # after the first round's one-off allocations
                baseline = _rss()
        assert _rss() - baseline < RSS_GROWTH
    finally:
        for sock in held:
            sock.close()


def test_a_reader_keeps_its_stream_past_the_deadline(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager, write_timeout=DEADLINE)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: fake_manager.events.stats.subscribers == 1)
        time.sleep(DEADLINE * 3)  # quiet, but nothing unread: no deadline runs
        fake_manager.events.progress(uv_envs.Phase.INSTALLING, {}, {"still": "here"})
        received = b""
        while b'"still"' not in received:
            chunk = sock.recv(65536)
            assert chunk, "the server closed a stream whose client reads"
            received += chunk
