"""Wiring for HTTP: the app, a thread pool for core calls, uvicorn on its own thread.

The guards are the gRPC side's: loopback unless ``allow_remote``
(:func:`~uv_envs_server._security.check_address`), optional TLS, an optional
bearer token (:func:`~uv_envs_server._security.check_token`), a request size
limit and the package-count limit, request ids in the log.
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
from uv_envs_server._limits import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_PACKAGES, DEFAULT_WORKERS
from uv_envs_server._security import check_address, check_token

from .app import create_app

if TYPE_CHECKING:
    from pathlib import Path

    from fastapi import FastAPI

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
        tls: tuple[Path, Path] | None,
    ) -> None:
        self.app = app
        self.executor = executor
        self._socket = sock
        host, self.port = sock.getsockname()[:2]
        scheme = "https" if tls is not None else "http"
        shown = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{shown}:{self.port}"
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,  # the guard middleware logs every request with its id
            lifespan="off",
            server_header=False,
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
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
        raise OSError(f"could not listen on {host}:{port}: {exc.strerror}") from None
    sock.setblocking(False)  # noqa: FBT003 - the socket API's own spelling
    return sock


def _check_tls(tls: tuple[Path, Path] | None) -> None:
    if tls is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(tls[0]), str(tls[1]))
    except (OSError, ssl.SSLError) as exc:
        msg = "the TLS certificate and key are no valid PEM pair"
        raise ValueError(msg) from exc


def create_http_server(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    manager: uv_envs.EnvManager | None = None,
    settings: uv_envs.Settings | None = None,
    max_workers: int = DEFAULT_WORKERS,
    allow_remote: bool = False,
    tls: tuple[Path, Path] | None = None,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    max_packages: int = DEFAULT_MAX_PACKAGES,
) -> HttpServer:
    """Build the HTTP server for ``manager``, bound to ``host:port`` but not started.

    Args:
        host: the address to listen on; loopback unless ``allow_remote``.
        port: the port; 0 picks a free one (read :attr:`HttpServer.port`).
        manager: the core manager to serve (the gRPC server's, to share a root).
        settings: settings for a new manager (ignored when ``manager`` is given).
        max_workers: threads running core calls; each running create holds one.
        allow_remote: allow a host that is not loopback; then use ``tls`` and ``token``.
        tls: ``(certificate_chain_file, private_key_file)``, both PEM, to serve HTTPS.
        token: when given, every request but ``/v1/health`` and the OpenAPI
            schema and page must send ``Authorization: Bearer <token>`` (else 401).
        max_body_bytes: the largest request body accepted (else 413).
        max_packages: packages one request may name (else 422).

    Raises:
        RemoteAddressNotAllowed: a remote ``host`` without ``allow_remote``.
        ValueError: a bad limit, token or TLS pair.
        OSError: the address cannot be bound.

    .. versionadded:: 0.1.0

    """
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    check_address(f"{shown}:{port}", allow_remote=allow_remote)
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, not {max_workers}")
    if max_body_bytes < 1:
        raise ValueError(f"max_body_bytes must be at least 1, not {max_body_bytes}")
    if max_packages < 1:
        raise ValueError(f"max_packages must be at least 1, not {max_packages}")
    if token is not None:
        check_token(token)
    _check_tls(tls)
    manager = manager if manager is not None else uv_envs.EnvManager(settings)
    executor = futures.ThreadPoolExecutor(max_workers, thread_name_prefix="uv-envs-http")
    app = create_app(
        manager, executor, token=token, max_body_bytes=max_body_bytes, max_packages=max_packages
    )
    sock = _bind(host, port)
    logger.debug("HTTP bound %s:%d, TLS %s", host, sock.getsockname()[1], tls is not None)
    return HttpServer(app, sock, executor=executor, tls=tls)
