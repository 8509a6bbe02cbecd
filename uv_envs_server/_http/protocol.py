"""uvicorn's h11 protocol with a deadline for a request's headers.

uvicorn closes a connection idle between requests (its keep-alive timeout) but
cancels that timer at the first byte of the next request, and arms none for a
new connection: a client that sends half a request line, or nothing at all,
holds a connection and its buffers forever (the trial's slowloris: 65 s and
counting). Here every wait for a request's headers, from the connection's start
or the end of the previous response, has a deadline that trickled bytes do not
move; past it the client gets a 408 and the connection is closed. The body's
deadline is the guard middleware's, which reads the body.
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


class HeaderDeadlineProtocol(H11Protocol):
    """:class:`H11Protocol` that closes a connection whose request headers are late.

    Use :func:`with_header_deadline` for a subclass with the deadline set.
    """

    header_timeout: ClassVar[float] = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - uvicorn's own
        super().__init__(*args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

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
        """The next request's headers get a deadline of their own."""
        super().on_response_complete()
        if not self.transport.is_closing() and self._waiting_for_headers():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing to time out any more."""
        self._disarm_header_deadline()
        super().connection_lost(exc)

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


def with_header_deadline(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class for uvicorn's ``http`` option, with a header deadline of ``seconds``."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout": seconds})
