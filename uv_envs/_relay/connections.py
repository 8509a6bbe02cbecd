"""The relay's HTTP/1.1 side: asyncio streams on one event loop thread, bounded.

Why asyncio and not a thread per connection (``ThreadingHTTPServer``): an
idle or slow client then costs a few kilobytes, not a thread, so the caps can
be generous for real clients while a thousand idle sockets hold nothing but
their slot until the header timeout closes them. The stdlib has all of it, so
the core library gains no dependency.

Each connection: at most ``header_timeout`` to send a request line and headers
(also the keep-alive idle time), at most ``max_request_bytes`` of them, GET
only, at most ``write_timeout`` per chunk of the answer. Past
``max_connections`` (or ``max_client_connections`` from one address) a
connection is answered 503 and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs

from uv_envs._relay.limits import RelayLimits

logger = logging.getLogger("uv_envs")

_CHUNK = 1 << 20
_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@attrs.frozen
class Request:
    """A GET: who asks, the path (without its query), and whether the client left."""

    client: str
    path: str
    gone: asyncio.Event  # set when the client closes its side while it waits


@attrs.frozen
class Answer:
    """A status with a short fixed text, or 200 with a file; None from a handler: no answer."""

    status: int
    file: Path | None = None


Handler = Callable[[Request], Awaitable[Answer | None]]


class LoopServer:
    """An asyncio HTTP server run by an event loop in a daemon thread of its own."""

    def __init__(self, handler: Handler, limits: RelayLimits, name: str) -> None:
        self.handler = handler
        self.limits = limits
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._server: asyncio.Server | None = None
        self._open: Counter[str] = Counter()  # per client address
        self._open_total = 0  # read from other threads: an int, not the Counter
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); the port."""
        self._thread.start()
        try:
            self._server = asyncio.run_coroutine_threadsafe(
                asyncio.start_server(
                    self._connection, host, port, limit=self.limits.max_request_bytes, backlog=512
                ),
                self.loop,
            ).result()
        except BaseException:
            self.stop()
            raise
        return int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close the socket and every connection, stop the loop and its thread."""
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close(), self.loop).result()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return self._open_total

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        client = str(peer[0]) if peer else "?"
        limits = self.limits
        try:
            if (
                self._open_total >= limits.max_connections
                or self._open[client] >= limits.max_client_connections
            ):
                await self._send(writer, Answer(503), close=True)
                return
            self._open[client] += 1
            self._open_total += 1
            try:
                await self._requests(client, reader, writer)
            finally:
                self._open_total -= 1
                self._open[client] -= 1
                if self._open[client] <= 0:
                    del self._open[client]
        except (OSError, TimeoutError, EOFError):
            pass  # the client hung up or stopped reading: its business
        finally:
            writer.close()

    async def _requests(
        self, client: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        limits = self.limits
        while True:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), limits.header_timeout)
            except TimeoutError:
                await self._send(writer, Answer(408), close=True)
                return
            except asyncio.LimitOverrunError:
                await self._send(writer, Answer(431), close=True)
                return
            except asyncio.IncompleteReadError:
                return  # closed between two requests
            parsed = _parse(head)
            if isinstance(parsed, Answer):
                await self._send(writer, parsed, close=True)
                return
            target, close = parsed
            gone = asyncio.Event()
            watcher = asyncio.ensure_future(self._watch(reader, gone))
            try:
                answer = await self.handler(Request(client, target.split("?", 1)[0], gone))
            except Exception:
                logger.exception("wheel relay: answering a request failed")
                answer = Answer(500)
            finally:
                watcher.cancel()
            if answer is None or gone.is_set():
                return
            await self._send(writer, answer, close=close)
            if close:
                return

    @staticmethod
    async def _watch(reader: asyncio.StreamReader, gone: asyncio.Event) -> None:
        """Set ``gone`` once the client closes its side (it sends nothing while it waits)."""
        with contextlib.suppress(OSError):
            if not await reader.read(1):
                gone.set()
                return
        gone.set()  # bytes before its answer: a pipelining client, not served here

    async def _send(self, writer: asyncio.StreamWriter, answer: Answer, *, close: bool) -> None:
        reason = _REASONS.get(answer.status, "Error")
        timeout = self.limits.write_timeout
        if answer.file is None:
            body = f"{answer.status} {reason}\n".encode()
            kind = "text/plain; charset=utf-8"
            source = None
        else:
            try:
                source = answer.file.open("rb")
            except OSError:  # pruned since it was found: the client may ask again
                await self._send(writer, Answer(503), close=close)
                return
            body = b""
            kind = "application/octet-stream"
        try:
            length = len(body) if source is None else source.seek(0, 2)
            writer.write(
                (
                    f"HTTP/1.1 {answer.status} {reason}\r\nContent-Type: {kind}\r\n"
                    f"Content-Length: {length}\r\n"
                    f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
                ).encode("ascii")
                + body
            )
            await asyncio.wait_for(writer.drain(), timeout)
            if source is not None:
                source.seek(0)
                while chunk := source.read(_CHUNK):
                    writer.write(chunk)
                    await asyncio.wait_for(writer.drain(), timeout)
        finally:
            if source is not None:
                source.close()


def _parse(head: bytes) -> tuple[str, bool] | Answer:
    """A GET's target and whether to close after it; else the error to answer."""
    line, *fields = head.decode("latin-1").split("\r\n")
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):  # noqa: PLR2004 - method target version
        return Answer(400)
    method, target, version = parts
    if method != "GET":
        return Answer(405)
    close = version == "HTTP/1.0" or any(
        field.lower().replace(" ", "") == "connection:close" for field in fields
    )
    return target, close
