"""Server interceptors: request ids and one log line per RPC, and the bearer-token check.

:class:`RequestLogInterceptor` runs first. It takes the caller's
``x-request-id`` (or makes one), returns it in the trailing metadata, and
logs the method, status code and duration of every call under it.
:class:`TokenInterceptor` then refuses, with UNAUTHENTICATED, every call
without ``authorization: Bearer <token>``, except health checks (load
balancers probe without credentials).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Final, cast

import grpc

from uv_envs_server._request_ids import CallCounts, choose_request_id, current_request_id
from uv_envs_server._security import bearer_matches

from .health import HEALTH_SERVICE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    Behavior = Callable[[Any, grpc.ServicerContext], Any]
    Continuation = Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None]

#: The metadata key of the request id, in requests and in trailing metadata.
REQUEST_ID_KEY: Final = "x-request-id"

#: The metadata key of the bearer token.
AUTHORIZATION_KEY: Final = "authorization"

UNAUTHENTICATED_MESSAGE: Final = (
    "missing or wrong bearer token: send the metadata 'authorization: Bearer <token>'"
)

_HEALTH_PREFIX: Final = f"/{HEALTH_SERVICE}/"

access_log = logging.getLogger("uv_envs_server.rpc")


def _metadata(details: grpc.HandlerCallDetails, key: str) -> list[str]:
    pairs = cast("Iterable[tuple[str, str | bytes]]", details.invocation_metadata or ())
    return [v.decode("latin-1") if isinstance(v, bytes) else v for k, v in pairs if k == key]


def request_id_of(details: grpc.HandlerCallDetails) -> str:
    """The caller's ``x-request-id`` when it is well formed, else a new random one."""
    return choose_request_id(_metadata(details, REQUEST_ID_KEY))


def add_trailing_metadata(
    context: grpc.ServicerContext, pairs: tuple[tuple[str, str], ...]
) -> None:
    """Add to the call's trailing metadata, keeping what is set already."""
    current = cast("Iterable[tuple[str, str | bytes]]", context.trailing_metadata() or ())
    context.set_trailing_metadata((*current, *pairs))


def rebuild(
    handler: grpc.RpcMethodHandler[Any, Any],
    wrap: Callable[[Behavior], Behavior],
    wrap_streaming: Callable[[Behavior], Behavior],
    *,
    deserialize: bool = True,
) -> grpc.RpcMethodHandler[Any, Any]:
    """Return ``handler`` with its behavior wrapped (``wrap_streaming`` for streamed responses).

    With ``deserialize=False`` requests reach the behavior as raw bytes.
    """
    deserializer = handler.request_deserializer if deserialize else None
    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        assert handler.stream_stream is not None  # noqa: S101 - grpc's invariant
        return grpc.stream_stream_rpc_method_handler(
            wrap_streaming(handler.stream_stream), deserializer, serializer
        )
    if handler.request_streaming:
        assert handler.stream_unary is not None  # noqa: S101
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary), deserializer, serializer
        )
    if handler.response_streaming:
        assert handler.unary_stream is not None  # noqa: S101
        return grpc.unary_stream_rpc_method_handler(
            wrap_streaming(handler.unary_stream), deserializer, serializer
        )
    assert handler.unary_unary is not None  # noqa: S101
    return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary), deserializer, serializer)


# A client gives up when its own deadline passes and cancels the stream; the
# server's copy of that deadline starts when the request arrives, so it lies
# later by the time the request took to get here (well over 50 ms on a loaded
# machine). A cancel this close to the deadline is read as the deadline.
_DEADLINE_SLACK = 1.0


def deadline_of(context: grpc.ServicerContext) -> float | None:
    """The call's deadline on ``time.monotonic()``'s clock, or None without one."""
    # None without a deadline (the stubs say float).
    remaining = cast("float | None", context.time_remaining())
    return None if remaining is None else time.monotonic() + remaining


def final_code(
    context: grpc.ServicerContext, *, raised: bool, deadline: float | None = None
) -> grpc.StatusCode:
    """The status code a finished call ended with, as far as the server can tell.

    ``deadline`` is the one read when the call started (see :func:`deadline_of`):
    once a call is over, grpc does not reliably say how much time it had left.
    """
    if not context.is_active():
        expired = deadline is not None and time.monotonic() >= deadline - _DEADLINE_SLACK
        return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    # ServicerContext.code() exists since grpcio 1.38; the type stubs lack it.
    code = cast("grpc.StatusCode | None", getattr(context, "code", lambda: None)())
    if code is not None:
        return code
    return grpc.StatusCode.UNKNOWN if raised else grpc.StatusCode.OK


class RequestLogInterceptor(grpc.ServerInterceptor):
    """Gives each call a request id and logs ``method code duration request_id``.

    Health checks are logged at DEBUG (load balancers call them often), the
    rest at INFO. The id goes back in the trailing metadata key ``x-request-id``.
    With ``calls``, each call is also counted there by method and code (the
    HTTP server's ``/metrics`` shows them).

    .. versionadded:: 0.1.0
    """

    def __init__(self, calls: CallCounts | None = None) -> None:
        self._calls = calls

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Wrap the call's handler in the timing and logging."""
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        request_id = request_id_of(handler_call_details)
        level = logging.DEBUG if method.startswith(_HEALTH_PREFIX) else logging.INFO
        calls = self._calls

        def log(
            context: grpc.ServicerContext,
            started: float,
            deadline: float | None,
            *,
            raised: bool,
        ) -> None:
            code = final_code(context, raised=raised, deadline=deadline)
            duration_ms = (time.monotonic() - started) * 1000
            if calls is not None:
                calls.add(method, code.name, duration_ms / 1000)
            access_log.log(
                level, "%s %s %.1fms request_id=%s", method, code.name, duration_ms, request_id
            )

        def wrap(behavior: Behavior) -> Behavior:
            def run(request: Any, context: grpc.ServicerContext) -> Any:  # noqa: ANN401
                started = time.monotonic()
                deadline = deadline_of(context)
                add_trailing_metadata(context, ((REQUEST_ID_KEY, request_id),))
                token = current_request_id.set(request_id)
                raised = True
                try:
                    answer = behavior(request, context)
                    raised = False
                    return answer
                finally:
                    current_request_id.reset(token)
                    log(context, started, deadline, raised=raised)

            return run

        def wrap_streaming(behavior: Behavior) -> Behavior:
            def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:  # noqa: ANN401
                started = time.monotonic()
                deadline = deadline_of(context)
                add_trailing_metadata(context, ((REQUEST_ID_KEY, request_id),))
                raised = True
                try:
                    yield from behavior(request, context)
                    raised = False
                finally:
                    log(context, started, deadline, raised=raised)

            return run

        return rebuild(handler, wrap, wrap_streaming)


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses calls without ``authorization: Bearer <token>`` with UNAUTHENTICATED.

    Health checks (``grpc.health.v1.Health``) need no token. Tokens are
    compared with :func:`hmac.compare_digest`. A refused call's request is
    never parsed.

    Args:
        token: the token callers must send.

    .. versionadded:: 0.1.0

    """

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")

    def authorized(self, details: grpc.HandlerCallDetails) -> bool:
        """Whether the call carries the right token."""
        return bearer_matches(_metadata(details, AUTHORIZATION_KEY), self._token)

    def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """Pass the call on, or answer UNAUTHENTICATED."""
        handler = continuation(handler_call_details)
        if (
            handler is None
            or handler_call_details.method.startswith(_HEALTH_PREFIX)
            or self.authorized(handler_call_details)
        ):
            return handler

        def refuse(request: object, context: grpc.ServicerContext) -> Any:  # noqa: ANN401
            del request
            context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_MESSAGE)

        def refused(behavior: Behavior) -> Behavior:
            del behavior
            return refuse

        return rebuild(handler, refused, refused, deserialize=False)
