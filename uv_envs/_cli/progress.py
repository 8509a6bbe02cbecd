"""Progress on a terminal while an operation runs, read off the manager's event stream.

The CLI subscribes to the stream's ``OperationProgress`` events for the one
call it makes and writes a line for each to stderr as it is published: the
phase uv is in and the counts it reported (``resolving (uv lock): 12 resolved``). The
subscriber is woken in the publishing thread (no thread of its own); the
lines go only to a terminal, never with ``--json`` or ``--quiet``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import IO

from uv_envs._events.records import PROGRESS, EventFilter, StreamEvent
from uv_envs._manager import EnvManager

#: The subcommands that run uv and so report progress.
REPORTING = frozenset({"create", "ensure", "add", "update", "remove", "sync"})


def progress_line(event: StreamEvent) -> str:
    """One progress event as a line: ``uv-envs: resolving (uv lock): 12 resolved``."""
    phase = event.phase.value if event.phase else "working"
    command = event.details.get("command")
    words = [f"uv-envs: {phase}" + (f" ({command})" if command else "")]
    counts = ", ".join(f"{n} {what}" for what, n in sorted(event.counts.items()))
    package = event.details.get("package")
    if counts:
        words.append(counts)
    if package:
        words.append(str(package))
    return ": ".join(words)


@contextlib.contextmanager
def terminal_progress(manager: EnvManager, out: IO[str] | None) -> Iterator[None]:
    """Write the progress of the block's operations to ``out`` (None: nothing)."""
    if out is None:
        yield
        return
    subscription = manager.events.subscribe(EventFilter(names=frozenset({PROGRESS})))

    def show() -> None:
        while (event := subscription.poll()) is not None:
            if not event.is_notice:
                out.write(progress_line(event) + "\n")
                out.flush()

    subscription.wakeup = show
    try:
        yield
    finally:
        subscription.wakeup = None
        show()
        subscription.close()
