"""uv's own progress, read off its stderr: which phase a run is in and the counts it prints.

uv runs with ``--no-progress`` (no bars to parse), but it still prints one
summary line per step, such as ``Resolved 12 packages in 40ms`` or
``Installed 3 packages in 5ms``; those lines are the counts the stream
carries. A line this does not know is not progress, and nothing fails on it.
"""

from __future__ import annotations

import re
from typing import Final

import attrs

from uv_envs._events.records import Phase


@attrs.frozen
class Step:
    """One piece of progress: a phase, and a count when uv printed one."""

    phase: Phase
    counts: dict[str, int] = attrs.field(factory=dict)
    package: str | None = None


#: ``<Verb> <n> package(s)|file(s) in <time>``: the verb names the phase and the count.
_SUMMARY: Final = re.compile(
    r"^(?P<verb>[A-Z][a-z]+(?: compiled)?) (?P<n>\d+) (?:package|file)s?\b"
)
_COUNTED: Final = {
    "Resolved": (Phase.RESOLVING, "resolved"),
    "Prepared": (Phase.DOWNLOADING, "prepared"),
    "Uninstalled": (Phase.INSTALLING, "uninstalled"),
    "Installed": (Phase.INSTALLING, "installed"),
    "Audited": (Phase.CHECKING, "audited"),
    "Checked": (Phase.CHECKING, "checked"),
    "Bytecode compiled": (Phase.COMPILING, "compiled"),
}
#: Lines naming one package while it is fetched or built (uv prints them for slow ones).
_FETCHING: Final = re.compile(r"^\s*(?:Downloading|Downloaded|Building|Built) (?P<name>\S+)")


def parse_line(line: str) -> Step | None:
    """The progress one line of uv's stderr reports, if any."""
    summary = _SUMMARY.match(line)
    if summary is not None:
        known = _COUNTED.get(summary["verb"])
        if known is None:
            return None
        phase, counter = known
        return Step(phase, {counter: int(summary["n"])})
    fetching = _FETCHING.match(line)
    if fetching is not None:
        return Step(Phase.DOWNLOADING, package=fetching["name"])
    return None


def phase_of(what: str) -> Phase | None:
    """The phase a uv command starts in, from its description (``"uv lock"``, ...)."""
    if "--check" in what or what.startswith("uv pip check"):
        return Phase.CHECKING
    if what.startswith(("uv lock", "uv add", "uv remove")):
        return Phase.RESOLVING
    if what.startswith("uv sync"):
        return Phase.INSTALLING
    return None
