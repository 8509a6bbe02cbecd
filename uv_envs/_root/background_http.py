"""An HTTP server answering from daemon threads until stopped: the wheel relay's, a test index's."""

from __future__ import annotations

import http.server
import threading

import attrs


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
        server = http.server.ThreadingHTTPServer((host, port), handler)
        server.daemon_threads = True  # a client that hangs never holds up a stop
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
