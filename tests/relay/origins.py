"""Origins for the relay's tests: raw sockets on loopback that count what is asked of them.

Each origin answers every request with the same script (a callable writing raw
bytes to the socket), so a test can serve a file, redirect, send garbage, die
mid-body or trickle bytes, and read how many requests (and how many at once)
reached it.
"""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

Script = Callable[[str, socket.socket], None]


class Origin:
    """A loopback server running ``script`` for each request; counts requests."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests = 0
        self.at_once = 0
        self.most_at_once = 0
        self.closed_early = 0  # answers the client stopped reading
        self._guard = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="origin", daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        with suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), name="origin", daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            path = head.split(b" ", 2)[1].decode("latin-1")
            with self._guard:
                self.requests += 1
                self.at_once += 1
                self.most_at_once = max(self.most_at_once, self.at_once)
            try:
                self.script(path, conn)
            except OSError:
                with self._guard:
                    self.closed_early += 1
            finally:
                with self._guard:
                    self.at_once -= 1


@contextmanager
def origin(script: Script) -> Iterator[Origin]:
    running = Origin(script)
    try:
        yield running
    finally:
        running.close()


def serves(
    body: bytes, *, length: bool = True, hold: float = 0.0, until: threading.Event | None = None
) -> Script:
    """Answer 200 with ``body`` (with or without Content-Length) after ``hold`` seconds.

    With ``until``: only once it is set (at most 60 s later).
    """

    def script(_: str, conn: socket.socket) -> None:
        time.sleep(hold)
        if until is not None:
            until.wait(60)
        header = f"Content-Length: {len(body)}\r\n" if length else "Connection: close\r\n"
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + header.encode() + b"\r\n")
        for start in range(0, len(body), 1 << 16):
            conn.sendall(body[start : start + (1 << 16)])

    return script


def redirects(location: str) -> Script:
    def script(_: str, conn: socket.socket) -> None:
        conn.sendall(
            f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode()
        )

    return script


def raw(data: bytes) -> Script:
    """Send ``data`` as it is and close: garbage, or a body cut short."""

    def script(_: str, conn: socket.socket) -> None:
        conn.sendall(data)

    return script


def trickles(size: int, every: float) -> Script:
    """Announce ``size`` bytes, then send one every ``every`` seconds."""

    def script(_: str, conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
        for _byte in range(size):
            time.sleep(every)
            conn.sendall(b"x")

    return script


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def received_all(sock: socket.socket, timeout: float) -> bytes:
    """What a client socket receives until the server closes it (or ``timeout``)."""
    sock.settimeout(timeout)
    data = b""
    with suppress(TimeoutError, ConnectionError):
        while chunk := sock.recv(65536):
            data += chunk
    return data
