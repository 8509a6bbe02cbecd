"""Runs uv for the core: every invocation honours the cancel event of its thread.

It also reports uv's progress (:mod:`.progress`) to the event stream while uv
runs: the phase a command starts in, then each count uv prints.

``cancellable(event)`` sets the event for the operations run inside its block
(the gRPC and HTTP servers set it when a call's deadline passes or its client
goes away); :class:`UvRunner` hands it to the executor, which kills uv's
process group once it is set.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs

from uv_envs._errors import OperationCancelled
from uv_envs._events.progress import Step, parse_line, phase_of
from uv_envs._events.records import Phase

from .commands import UvInvocation
from .executor import UvExecutor, UvResult, raise_for_result

#: Where progress goes: ``EventStream.progress`` (phase, counts, details).
ProgressSink = Callable[[Phase, Mapping[str, int], Mapping[str, Any]], None]

log = logging.getLogger("uv_envs.events")

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
    progress: ProgressSink | None = None

    def run(self, invocation: UvInvocation, what: str) -> UvResult:
        """Run ``what`` (``"uv lock"``, ...) and return its result, failed or not."""
        cancel = _cancel_event.get()
        if cancel is not None:
            if cancel.is_set():
                raise OperationCancelled(f"{what} was cancelled")
            invocation = attrs.evolve(invocation, cancel=cancel)
        phase = phase_of(what)
        if self.progress is None or phase is None:
            return self.executor.run(invocation)
        report = _Reporter(self.progress, what)
        report(Step(phase))
        result = self.executor.run(attrs.evolve(invocation, stderr_line=report.line))
        if not report.streamed:
            # An executor that does not stream (a fake, a wrapper): the counts, at the end.
            for line in result.stderr.splitlines():
                report.line(line)
        return result

    def check(self, invocation: UvInvocation, what: str) -> UvResult:
        """Run ``what``; raise the fitting :class:`~uv_envs.UvError` if it failed."""
        return self.check_result(self.run(invocation, what), what)

    @staticmethod
    def check_result(result: UvResult, what: str) -> UvResult:
        """``result`` if uv succeeded; else the fitting :class:`~uv_envs.UvError`."""
        return raise_for_result(result, f"{what} failed")


@attrs.define
class _Reporter:
    """Turns one uv run's stderr lines into progress; never raises into uv's reader."""

    sink: ProgressSink
    what: str
    streamed: bool = False
    # uv's stderr is read on another thread: progress is published in the context of
    # the thread that runs the operation, whose operation id and env it carries.
    context: contextvars.Context = attrs.field(factory=contextvars.copy_context)

    def line(self, text: str) -> None:
        self.streamed = True
        step = parse_line(text)
        if step is not None:
            self(step)

    def __call__(self, step: Step) -> None:
        details: dict[str, Any] = {"command": self.what}
        if step.package is not None:
            details["package"] = step.package
        try:
            self.context.run(self.sink, step.phase, step.counts, details)
        except Exception:
            log.exception("progress subscriber failed; uv goes on")
