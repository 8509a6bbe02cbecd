"""Request ids: one per call, the caller's when well formed, shared by gRPC and HTTP.

Also :class:`CallCounts`, the calls a door answered: the gRPC server counts
into one, the HTTP server of the same process shows it on ``/metrics``.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import threading
import uuid
from collections.abc import Iterable

import attrs

import uv_envs

#: Request ids a caller may choose; anything else is replaced by a fresh one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

#: The request id of the unary call running in this thread, for error messages and logs.
current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "uv_envs_server_request_id", default=None
)


def choose_request_id(offered: Iterable[str]) -> str:
    """The first well-formed request id a caller offered, else a new random one.

    Shared by the gRPC metadata and the HTTP ``X-Request-Id`` header.
    """
    for value in offered:
        if _REQUEST_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def following() -> contextlib.AbstractContextManager[object]:
    """Core calls in this block carry the request id as their operation id in the stream."""
    request_id = current_request_id.get()
    if request_id is None:
        return contextlib.nullcontext()
    return uv_envs.EnvManager.following(request_id)


@attrs.define
class CallCounts:
    """Calls answered, by method and status code, with their total seconds; thread-safe."""

    _counts: dict[tuple[str, str], tuple[int, float]] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def add(self, method: str, code: str, seconds: float) -> None:
        """Count one call of ``method`` that ended with ``code`` after ``seconds``."""
        with self._lock:
            count, total = self._counts.get((method, code), (0, 0.0))
            self._counts[method, code] = (count + 1, total + max(seconds, 0.0))

    def snapshot(self) -> dict[tuple[str, str], tuple[int, float]]:
        """``(method, code)``: ``(calls, seconds)`` of every pair counted so far."""
        with self._lock:
            return dict(self._counts)
