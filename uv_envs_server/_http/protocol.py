"""uvicorn's h11 protocol with deadlines for a request's headers and for every write.

uvicorn closes a connection idle between requests (its keep-alive timeout) but
cancels that timer at the first byte of the next request, and arms none for a
new connection: a client that sends half a request line, or nothing at all,
holds a connection and its buffers forever (the trial's slowloris: 65 s and
counting). Here every wait for a request's headers, from the connection's start
or the end of the previous response, has a deadline that trickled bytes do not
move; past it the client gets a 408 and the connection is closed. The body's
deadline is the guard middleware's, which reads the body.

uvicorn has no write timeout either: a client that stops reading (an SSE
subscriber that is cut off, or never drained its socket) leaves the response
waiting for the socket to drain forever, holding the connection, its send
queue and the stream's buffers (issue 31: 24 connections, 38 MB, RSS doubled).
asyncio tells the protocol when its send buffer passes the high-water mark
(``pause_writing``) and when it has drained (``resume_writing``); a client
that does not drain within the write deadline has its connection aborted,
which drops the unsent bytes, and the response ends as for a client gone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final

from uvicorn.protocols.http.h11_impl import H11Protocol

if TYPE_CHECKING:
    import asyncio

    from uvicorn.protocols.http.h11_impl import RequestResponseCycle

#: The whole answer to a request whose headers did not come in time.
REQUEST_TIMEOUT: Final = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\n"
    b"content-length: 29\r\n"
    b"\r\n"
    b"request headers came too late"
)


class DeadlineProtocol(H11Protocol):
    """:class:`H11Protocol` that closes connections that are late to send or to read.

    Late to send: the request headers did not come in time; late to read: the
    client left its response unread past the write deadline.

    Use :func:`with_deadlines` for a subclass with the deadlines set.
    """

    header_timeout: ClassVar[float] = 10.0
    write_timeout: ClassVar[float] = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - uvicorn's own
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._write_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the first request's deadline with the connection."""
        super().connection_made(transport)
        self._arm_header_deadline()

    def handle_events(self) -> None:
        """Parse what came; the deadline ends once a request's headers are in."""
        super().handle_events()
        if self._waiting_for_headers():
            return
        self._disarm_header_deadline()

    def on_response_complete(self) -> None:
        """The next request's headers get a deadline of their own.

        A response that ended with bytes still unsent (below the high-water mark,
        so no ``pause_writing``: an SSE subscriber cut off early, a small answer to
        a client that stopped reading) gets the write deadline too: closing the
        connection later (keep-alive, the header deadline) would wait for those
        bytes forever.
        """
        super().on_response_complete()
        if not self.transport.is_closing() and self._waiting_for_headers():
            self._arm_header_deadline()
        if self._write_deadline is None and self.transport.get_write_buffer_size() > 0:
            self._write_deadline = self.loop.call_later(self.write_timeout, self._unread_late)

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing to time out any more."""
        self._disarm_header_deadline()
        self._disarm_write_deadline()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        """The send buffer is full: the client has the write deadline to drain it."""
        super().pause_writing()
        if self._write_deadline is None:
            self._write_deadline = self.loop.call_later(self.write_timeout, self._write_late)

    def resume_writing(self) -> None:
        """The client read what it was sent."""
        self._disarm_write_deadline()
        super().resume_writing()

    def _disarm_write_deadline(self) -> None:
        if self._write_deadline is not None:
            self._write_deadline.cancel()
            self._write_deadline = None

    def _write_late(self) -> None:
        self._write_deadline = None
        # abort(), not close(): close() would wait for the unsent bytes to go out,
        # which is what this client never lets happen. The loss of the connection
        # ends the response (uvicorn reports the client as disconnected).
        self.transport.abort()

    def _unread_late(self) -> None:
        self._write_deadline = None
        # Only a finished response still unread, with no request after it: a client
        # that took its bytes, or sent its next request, keeps its connection.
        if self.transport.get_write_buffer_size() > 0 and self._waiting_for_headers():
            self.transport.abort()

    def _waiting_for_headers(self) -> bool:
        # No request, or the last one is answered and the next has not begun.
        cycle: RequestResponseCycle | None = self.cycle  # None until the first request
        return cycle is None or cycle.response_complete

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_late)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or not self._waiting_for_headers():
            return
        # h11 cannot answer a request it has not parsed: the bytes are written directly.
        self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def with_deadlines(header_timeout: float, write_timeout: float) -> type[DeadlineProtocol]:
    """The protocol class for uvicorn's ``http`` option, with these deadlines in seconds."""
    deadlines = {"header_timeout": header_timeout, "write_timeout": write_timeout}
    return type("DeadlineProtocol", (DeadlineProtocol,), deadlines)
