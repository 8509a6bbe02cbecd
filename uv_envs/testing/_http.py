"""An HTTP server answering from daemon threads until stopped: the test index's."""

from __future__ import annotations

import http.server
import sys
import threading

import attrs


class _QuietServer(http.server.ThreadingHTTPServer):
    daemon_threads = True  # a client that hangs never holds up a stop

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up mid-answer (uv cancelling, a reset keep-alive connection)
        # is the client's business; anything else is printed as the stdlib does.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


@attrs.frozen
class BackgroundHTTPServer:
    """A :class:`http.server.ThreadingHTTPServer` run by a daemon thread of its own."""

    server: http.server.ThreadingHTTPServer
    thread: threading.Thread

    @classmethod
    def start(
        cls, host: str, port: int, handler: type[http.server.BaseHTTPRequestHandler], name: str
    ) -> BackgroundHTTPServer:
        """Listen on ``host:port`` (0: any free port) and serve until :meth:`stop`."""
        server = _QuietServer((host, port), handler)
        thread = threading.Thread(target=server.serve_forever, name=name, daemon=True)
        thread.start()
        return cls(server, thread)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Stop accepting, close the socket and wait for the serving thread."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
