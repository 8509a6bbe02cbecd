"""The HTTP side's guards, as one ASGI middleware: request id and log, token, body size.

They do for HTTP what the interceptors and channel options do for gRPC, with
the same pieces: :func:`~uv_envs_server._request_ids.choose_request_id`,
:func:`~uv_envs_server._security.bearer_matches` and the same limit on a
request's size. In order, for every request:

1. take the caller's ``X-Request-Id`` (or make one), answer it in the
   response header of the same name, and log ``method path status duration``
   under it;
2. without ``Authorization: Bearer <token>`` (when the server has a token),
   answer 401, except for the health check and the OpenAPI schema and page;
3. read the body, at most ``max_body_bytes`` (else 413) within
   ``body_timeout`` seconds (else 408, and the connection is closed), before
   the application sees it (a request with neither ``Content-Length`` nor
   ``Transfer-Encoding`` has none).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final

from starlette.datastructures import Headers

from uv_envs_server._request_ids import choose_request_id, current_request_id
from uv_envs_server._security import bearer_matches

from .problems import problem

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("uv_envs_server.http")

#: Paths reachable without the token: load balancers probe health; the schema is no secret.
OPEN_PATHS: Final = frozenset({"/v1/health", "/openapi.json", "/docs", "/docs/oauth2-redirect"})
#: Where /docs loads its scripts and styles from (served by this server): open as /docs is.
DOCS_ASSETS: Final = "/docs/assets"

UNAUTHENTICATED_MESSAGE: Final = (
    "missing or wrong bearer token: send the header 'Authorization: Bearer <token>'"
)


class GuardMiddleware:
    """Request ids, the access log, the bearer token and the body size limit.

    Args:
        app: the application behind the guards.
        token: the token callers must send; None to require none.
        max_body_bytes: the largest request body accepted.
        body_timeout: seconds the client has to send the whole body.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self, app: ASGIApp, *, token: str | None, max_body_bytes: int, body_timeout: float = 60.0
    ) -> None:
        self.app = app
        self._token = token.encode("utf-8") if token is not None else None
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request through the guards."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = choose_request_id(headers.getlist("x-request-id"))
        scope.setdefault("state", {})["request_id"] = request_id
        path: str = scope["path"]
        status = 0

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"x-request-id", request_id.encode("ascii")),
                ]
            await send(message)

        started = time.monotonic()
        context_token = current_request_id.set(request_id)
        try:
            refusal = self._refusal(headers, path, request_id)
            app_receive = receive
            if refusal is None and _has_body(headers):
                body, refusal = await self._read_body(headers, receive, path, request_id)
                app_receive = _replay(body, receive)
            if refusal is not None:
                await refusal(scope, receive, answer)
                return
            await self.app(scope, app_receive, answer)
        finally:
            current_request_id.reset(context_token)
            # The app's series (uv_envs_server._http.metrics), when prometheus-client is there.
            state = getattr(scope.get("app"), "state", None)
            if (metrics := getattr(state, "metrics", None)) is not None:
                metrics.observe(scope, status, started)
            level = logging.DEBUG if path == "/v1/health" else logging.INFO
            access_log.log(
                level,
                "%s %s %d %.1fms request_id=%s",
                scope.get("method", ""),
                path,
                status,
                (time.monotonic() - started) * 1000,
                request_id,
            )

    def _refusal(self, headers: Headers, path: str, request_id: str) -> ASGIApp | None:
        if (
            self._token is None
            or path in OPEN_PATHS
            or path.startswith(f"{DOCS_ASSETS}/")
            or bearer_matches(headers.getlist("authorization"), self._token)
        ):
            return None
        return problem(
            401,
            UNAUTHENTICATED_MESSAGE,
            request_id=request_id,
            instance=path,
            headers={"WWW-Authenticate": "Bearer"},
        )

    async def _read_body(
        self, headers: Headers, receive: Receive, path: str, request_id: str
    ) -> tuple[bytes, ASGIApp | None]:
        def too_large() -> ASGIApp:
            detail = f"the request body is larger than {self.max_body_bytes} bytes"
            return problem(413, detail, request_id=request_id, instance=path)

        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                return b"", problem(400, "bad Content-Length", request_id=request_id)
            if int(declared) > self.max_body_bytes:
                return b"", too_large()
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] != "http.request":
                        break  # the client went away; the application will see that too
                    chunk: bytes = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        return b"", too_large()
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            detail = f"the request body did not arrive within {self.body_timeout:g} s"
            # The rest of the body may still come: the connection cannot carry another request.
            closing = {"Connection": "close"}
            return b"", problem(408, detail, request_id=request_id, instance=path, headers=closing)
        return b"".join(chunks), None


def _has_body(headers: Headers) -> bool:
    """Whether the request has a body to read: without either header it has none (RFC 9112 6.3).

    A GET without them (every read) then costs no deadline timer and no wait for a body.
    """
    return "content-length" in headers or "transfer-encoding" in headers


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands out the body read already, then waits for the disconnect."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
