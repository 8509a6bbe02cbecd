"""``GET /metrics``: the server in Prometheus' text format, with prometheus-client.

Each app has its own registry (two servers in one process, as in the tests,
count apart). Requests are counted by the guard middleware, by route
template (``/v1/envs/{workflow_id}/{node_id}/{version_id}``, never the ids, so
the series stay few); the rest is read from the manager when scraped
(:mod:`.scrape`): envs by status, operations by kind and outcome with their
durations, uv runs by command, the shared store's entries and bytes, the
event stream's subscribers, events and drops, the audit trail by status, and
the wheel relay's files and bytes when the server serves a Ray cluster, and
the gRPC server's calls when ``uv-envs-server`` runs both doors.
docs/http.md lists every series. The route sits behind the token like every
other one.

prometheus-client comes with the ``[server]`` extra; without it there is no
``/metrics`` (404), and the rest of the API is unaffected.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, FastAPI, Request, Response

from .scrape import GrpcCollector, ManagerCollector

if TYPE_CHECKING:
    import uv_envs
    from uv_envs_server._request_ids import CallCounts

router = APIRouter()

#: A request that matched no route: one label for all of them.
UNMATCHED: Final = "unmatched"


class Metrics:
    """The series of one app; :meth:`observe` is called once per request."""

    def __init__(self, manager: uv_envs.EnvManager, grpc_calls: CallCounts | None = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram  # noqa: PLC0415

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "uv_envs_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "uv_envs_http_request_duration_seconds",
            "Seconds from a request's arrival to its answer, by route template",
            ["route"],
            registry=self.registry,
        )
        self.registry.register(ManagerCollector(manager))
        if grpc_calls is not None:
            self.registry.register(GrpcCollector(grpc_calls))

    def observe(self, scope: dict[str, Any], status: int, started: float) -> None:
        """Count one answered request (``started``: its ``time.monotonic()``)."""
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        self.requests.labels(scope.get("method", ""), template, str(status)).inc()
        self.latency.labels(template).observe(time.monotonic() - started)


def install(
    app: FastAPI, manager: uv_envs.EnvManager, grpc_calls: CallCounts | None = None
) -> None:
    """Serve ``/metrics`` on ``app`` and count its requests; nothing without prometheus-client.

    ``grpc_calls``: the RPCs of a gRPC server in the same process, shown beside.
    """
    try:
        app.state.metrics = Metrics(manager, grpc_calls)
    except ImportError:
        app.state.metrics = None  # no route either: the schema promises only what is served
        return
    app.include_router(router)


@router.get(
    "/metrics",
    tags=["maintenance"],
    response_class=Response,
    responses={200: {"description": "Prometheus' text format", "content": {"text/plain": {}}}},
)
def metrics(request: Request) -> Response:  # not async: a scrape reads the root's files
    """The server's metrics in Prometheus' text format (needs the token like other routes)."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest  # noqa: PLC0415

    collected: Metrics = request.app.state.metrics
    return Response(generate_latest(collected.registry), media_type=CONTENT_TYPE_LATEST)
