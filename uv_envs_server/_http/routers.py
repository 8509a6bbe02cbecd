"""A router that rules itself out at once for a path outside the first segments of its routes.

FastAPI (0.11x on) matches a request against each included router in turn,
route by route: a path of the original service's API (``/envs/...``) went
through the twenty-odd ``/v1`` routes' patterns before reaching its own: a
sixth of the instructions its status read cost the application (callgrind).
Every route of :data:`~.v1.routes.router` and of the compatibility router
begins with a fixed first segment (``v1``, ``envs``, ``envs-history``, or
``/`` itself), so a path whose first segment is none of those cannot match
any of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter
from starlette.routing import Match

if TYPE_CHECKING:
    from starlette.types import Scope


def first_segment(path: str) -> str:
    """``"v1"`` for ``/v1/envs/...``, ``""`` for ``/``; what a route path's pattern begins with."""
    return path.split("/", 2)[1] if path.startswith("/") else ""


class SegmentRouter(APIRouter):
    """An :class:`APIRouter` that is no match for a path beginning with none of its segments.

    Include it without a prefix (as :func:`~.app.create_app` does): the segments
    are its routes' own. A route whose first segment is a parameter turns the
    check off.
    """

    _segments: frozenset[str] | None = None
    _segments_of = -1  # how many routes the segments were read from

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """:data:`Match.NONE` for a path outside the segments; else FastAPI's own matching."""
        segments = self._first_segments()
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if segments is not None and first_segment(path) not in segments:
            return Match.NONE, {}
        return super().matches(scope)

    def _first_segments(self) -> frozenset[str] | None:
        if self._segments_of != len(self.routes):  # routes are added at import, then read
            found = {first_segment(getattr(route, "path", "{")) for route in self.routes}
            self._segments = None if any("{" in s for s in found) else frozenset(found)
            self._segments_of = len(self.routes)
        return self._segments
