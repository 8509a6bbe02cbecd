"""Runs uv for the core: every invocation honours the cancel event of its thread.

``cancellable(event)`` sets the event for the operations run inside its block
(the gRPC and HTTP servers set it when a call's deadline passes or its client
goes away); :class:`UvRunner` hands it to the executor, which kills uv's
process group once it is set.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator

import attrs

from uv_envs._errors import OperationCancelled

from .commands import UvInvocation
from .executor import UvExecutor, UvResult, raise_for_result

_cancel_event: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar(
    "uv_envs_cancel", default=None
)


@contextlib.contextmanager
def cancellable(cancel: threading.Event) -> Iterator[None]:
    """Operations run in this block stop, and roll back, once ``cancel`` is set."""
    token = _cancel_event.set(cancel)
    try:
        yield
    finally:
        _cancel_event.reset(token)


@attrs.frozen
class UvRunner:
    """The one place the core runs uv."""

    executor: UvExecutor

    def run(self, invocation: UvInvocation, what: str) -> UvResult:
        """Run ``what`` (``"uv lock"``, ...) and return its result, failed or not."""
        cancel = _cancel_event.get()
        if cancel is not None:
            if cancel.is_set():
                raise OperationCancelled(f"{what} was cancelled")
            invocation = attrs.evolve(invocation, cancel=cancel)
        return self.executor.run(invocation)

    def check(self, invocation: UvInvocation, what: str) -> UvResult:
        """Run ``what``; raise the fitting :class:`~uv_envs.UvError` if it failed."""
        return self.check_result(self.run(invocation, what), what)

    @staticmethod
    def check_result(result: UvResult, what: str) -> UvResult:
        """``result`` if uv succeeded; else the fitting :class:`~uv_envs.UvError`."""
        return raise_for_result(result, f"{what} failed")
