"""Slow and idle HTTP clients are cut off (issue 18, finding 4).

The trial held a connection open 65 s and counting with half a request header.
Now the headers have a deadline from the connection's start (trickled bytes do
not move it), the body one from the end of the headers, and an idle
connection between requests is closed after the keep-alive timeout. Each is a
raw socket against a real uvicorn on loopback.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import uv_envs
from uv_envs_server import ServeOptions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SHORT = 0.5
# How long a test waits for the server to act: the deadline and then some.
PATIENCE = 10.0


@pytest.fixture
def address(http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager) -> tuple[str, int]:
    server = http_serve(
        fake_manager, header_timeout=SHORT, body_timeout=SHORT, keep_alive_timeout=1
    )
    return "127.0.0.1", server.port


@pytest.fixture
def connection(address: tuple[str, int]) -> Iterator[socket.socket]:
    with socket.create_connection(address, timeout=PATIENCE) as sock:
        yield sock


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took."""
    started = time.monotonic()
    received = b""
    while chunk := sock.recv(65536):  # raises TimeoutError if the server never closes
        received += chunk
    return received, time.monotonic() - started


def test_half_a_header_then_nothing_is_answered_408_and_closed(
    connection: socket.socket,
) -> None:
    connection.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
    answer, waited = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert waited < PATIENCE


def test_a_connection_that_never_sends_is_closed(connection: socket.socket) -> None:
    answer, _ = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_trickled_header_bytes_do_not_extend_the_deadline(connection: socket.socket) -> None:
    started = time.monotonic()
    request = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    try:
        for byte in request:
            connection.sendall(bytes([byte]))
            time.sleep(SHORT / 5)
            if time.monotonic() - started > PATIENCE:
                pytest.fail("the server let a trickling client keep its connection")
    except (BrokenPipeError, ConnectionResetError):
        return  # closed while the bytes still went out
    answer, _ = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 "), "served a request that came too slowly"


def test_a_stalled_body_is_answered_408_and_closed(connection: socket.socket) -> None:
    connection.sendall(
        b"POST /v1/cleanup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    answer, waited = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"application/problem+json" in answer
    assert waited < PATIENCE


def test_an_idle_connection_between_requests_is_closed(connection: socket.socket) -> None:
    connection.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    answer, waited = _read_until_closed(connection)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"SERVING" in answer
    assert 0.5 < waited < PATIENCE  # kept open for the keep-alive timeout, then closed


def test_a_client_within_the_deadlines_is_served_on_one_connection(
    connection: socket.socket,
) -> None:
    for _ in range(3):
        connection.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        time.sleep(SHORT / 3)
        connection.sendall(b"\r\n")
        answer = b""
        while b"SERVING" not in answer:  # the head and the body may come apart
            chunk = connection.recv(65536)
            assert chunk, "the server closed a connection that kept to the deadlines"
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("field", ["header_timeout", "body_timeout", "keep_alive_timeout"], ids=str)
@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")], ids=str)
def test_a_bad_timeout_is_refused(field: str, bad: float) -> None:
    options: dict[str, Any] = {field: bad}
    with pytest.raises(ValueError, match=field):
        ServeOptions(**options)
