"""Wiring for HTTP: the app, a thread pool for core calls, uvicorn on its own thread.

The guards are the gRPC side's, from the same :class:`~uv_envs_server.ServeOptions`:
loopback unless ``allow_remote``, optional TLS, an optional bearer token, a
request size limit and the package-count limit, request ids in the log.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from concurrent import futures
from typing import TYPE_CHECKING

import uvicorn

import uv_envs
from uv_envs_server._options import ServeOptions

from . import sse
from .app import create_app
from .protocol import with_deadlines

if TYPE_CHECKING:
    from fastapi import FastAPI

    from uv_envs_server._request_ids import CallCounts
    from uv_envs_server._security import TlsFiles

logger = logging.getLogger("uv_envs_server")

#: Seconds :meth:`HttpServer.start` waits for uvicorn to listen.
START_TIMEOUT = 30.0


class HttpServer:
    """uvicorn serving the uv-envs HTTP API on a thread; made by :func:`create_http_server`.

    ``app`` is the FastAPI application, ``executor`` the pool core calls run
    on, ``port`` the bound port and ``url`` the base URL.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        app: FastAPI,
        sock: socket.socket,
        *,
        executor: futures.ThreadPoolExecutor,
        options: ServeOptions,
    ) -> None:
        self.app = app
        self.executor = executor
        self._socket = sock
        host, self.port = sock.getsockname()[:2]
        tls = options.tls
        scheme = "https" if tls is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{self.port}"
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,  # the guard middleware logs every request with its id
            lifespan="off",
            server_header=False,
            http=with_deadlines(options.header_timeout, options.write_timeout),
            timeout_keep_alive=options.keep_alive_timeout,
            ssl_certfile=str(tls.certificate_chain) if tls else None,
            ssl_keyfile=str(tls.private_key) if tls else None,
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start serving; returns once uvicorn listens (raises OSError if it could not)."""
        thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name="uv-envs-http",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        waited = 0.0
        while not self._server.started:
            if not thread.is_alive() or waited > START_TIMEOUT:
                raise OSError(f"the HTTP server on {self.url} did not start")
            thread.join(0.01)
            waited += 0.01

    def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let running requests finish for ``grace`` seconds, then stop.

        Core calls still running afterwards are cancelled (their clients are
        gone) and roll back; :attr:`executor` is shut down when they end.
        """
        self._server.config.timeout_graceful_shutdown = (
            None if grace is None else int(max(grace, 0))
        )
        self._server.should_exit = True
        sse.close_all(self.app.state)  # open event streams would hold the shutdown
        if self._thread is not None:
            self._thread.join()
        with contextlib.suppress(OSError):
            self._socket.close()
        self.executor.shutdown(wait=False)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted connections. Without it h11's separate writes of
        # headers and body wait for the client's delayed ACK: ~40 ms per request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        refused = OSError(f"could not listen on {host}:{port}: {exc.strerror}")
        refused.errno = exc.errno  # so the command line can tell a taken port
        raise refused from None
    sock.setblocking(False)  # noqa: FBT003 - the socket API's own spelling
    return sock


def _check_tls(tls: TlsFiles | None) -> None:
    if tls is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(tls.certificate_chain), str(tls.private_key))
    except (OSError, ssl.SSLError) as exc:
        msg = "the TLS certificate and key are no valid PEM pair"
        raise ValueError(msg) from exc


def create_http_server(
    manager: uv_envs.EnvManager,
    options: ServeOptions | None = None,
    *,
    grpc_calls: CallCounts | None = None,
) -> HttpServer:
    """Build the HTTP server for ``manager``, bound to ``options.host:port`` but not started.

    Args:
        manager: the core manager to serve (the gRPC server's, to share a root).
        options: where to listen, TLS, token and limits; ``ServeOptions()`` (a
            free port on 127.0.0.1) by default. ``max_workers`` threads run core
            calls; the token is not asked for ``/v1/health``, the OpenAPI schema
            and its docs page; ``min_cleanup_idle_hours`` is the cleanup floor.
        grpc_calls: the ``calls`` of the gRPC server beside it
            (:class:`EnvManagerServer`), for ``/metrics`` to count its RPCs too.

    Raises:
        ValueError: the TLS files are no valid PEM pair.
        OSError: the address cannot be bound.

    .. versionadded:: 0.1.0

    """
    options = options if options is not None else ServeOptions()
    _check_tls(options.tls)
    executor = futures.ThreadPoolExecutor(options.max_workers, thread_name_prefix="uv-envs-http")
    app = create_app(manager, executor, options, grpc_calls=grpc_calls)
    sock = _bind(options.host, options.port)
    port = sock.getsockname()[1]
    logger.debug("HTTP bound %s:%d, TLS %s", options.host, port, options.tls is not None)
    return HttpServer(app, sock, executor=executor, options=options)
