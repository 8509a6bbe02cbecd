"""An executor that counts each uv run by command and outcome, for ``EnvManager.stats``.

The bootstrap wraps whichever executor the manager runs (the real one or a
caller's) in it, so every uv command line the manager starts is counted once,
wherever in the core it was built.
"""

from __future__ import annotations

import time
from typing import Final

import attrs

from uv_envs._events.tallies import Tally

from .commands import UvInvocation
from .executor import UvExecutor, UvResult, uv_identity

# uv commands whose second word says what they do (``uv python list``, ``uv cache clean``):
# the label keeps both, and only these, so the set of labels stays small.
_GROUPS: Final = frozenset({"python", "cache", "pip", "tool", "self"})


def command_label(invocation: UvInvocation) -> str:
    """``lock``, ``sync``, ``python list``...: what a uv run is counted as."""
    args = invocation.args
    if not args:
        return ""
    if args[0] in _GROUPS and len(args) > 1 and not args[1].startswith("-"):
        return f"{args[0]} {args[1]}"
    return args[0]


@attrs.frozen
class CountedExecutor:
    """Runs uv through ``inner`` and adds each run to ``tally``: ``ok``, ``failed`` or ``error``."""

    inner: UvExecutor
    tally: Tally

    def run(self, invocation: UvInvocation) -> UvResult:
        command = command_label(invocation)
        started = time.monotonic()
        self.tally.began()
        try:
            result = self.inner.run(invocation)
        except BaseException:
            # Timed out, cancelled, no uv: it ran (or tried to) and gave no result.
            self.tally.ended((command, "error"), time.monotonic() - started)
            raise
        self.tally.ended((command, "ok" if result.ok else "failed"), time.monotonic() - started)
        return result

    def identity(self) -> str | None:
        """The wrapped executor's uv (see ``executor.IdentifiesUv``); None if it cannot tell."""
        return uv_identity(self.inner)
