"""Which operation (and env) the running thread works on.

The servers open :func:`operation_scope` with their request id, the env lock opens
one of its own otherwise, and every event published inside carries that id.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator

from uv_envs._errors import InvalidInput
from uv_envs._events.records import OPERATION_ID
from uv_envs._models import EnvKey

_operation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "uv_envs_operation", default=None
)


_env: contextvars.ContextVar[EnvKey | None] = contextvars.ContextVar("uv_envs_env", default=None)


@contextlib.contextmanager
def operation_scope(operation_id: str | None = None) -> Iterator[str]:
    """Events published in this block carry ``operation_id`` (or the enclosing block's).

    Without an id and outside any scope a new id is made, so one locked
    operation's events share one id. The servers open it with the request id,
    so a client follows its own create by the id it sent.
    """
    current = _operation.get()
    if operation_id is None and current is not None:
        yield current
        return
    if operation_id is not None and not OPERATION_ID.fullmatch(operation_id):
        raise InvalidInput("operation_id must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    chosen = operation_id or uuid.uuid4().hex
    token = _operation.set(chosen)
    try:
        yield chosen
    finally:
        _operation.reset(token)


@contextlib.contextmanager
def env_scope(key: EnvKey) -> Iterator[None]:
    """Progress published in this block is about ``key`` (set by the env lock)."""
    token = _env.set(key)
    try:
        yield
    finally:
        _env.reset(token)


def current_operation() -> str:
    """The operation id of this thread's scope, or a new one for an event outside any."""
    return _operation.get() or uuid.uuid4().hex


def current_env() -> EnvKey | None:
    """The env the operation of this thread works on, if it holds an env lock."""
    return _env.get()
