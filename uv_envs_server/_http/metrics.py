"""``GET /metrics``: the server in Prometheus' text format, with prometheus-client.

Each app has its own registry (two servers in one process, as in the tests,
count apart). Requests are counted by the guard middleware, by route
template (``/v1/envs/{workflow_id}/{node_id}/{version_id}``, never the ids, so
the series stay few); the rest is read from the manager when scraped: envs by
status, operations in the audit trail by status, the event stream's
subscribers, events and drops, and the wheel relay's files and bytes when
the server serves a Ray cluster. The route sits
behind the token like every other one.

prometheus-client comes with the ``[server]`` extra; without it there is no
``/metrics`` (404), and the rest of the API is unaffected.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from fastapi import APIRouter, FastAPI, Request, Response

import uv_envs
from uv_envs_server._nodes import relay_counts

if TYPE_CHECKING:
    from collections.abc import Iterator

router = APIRouter()

#: A request that matched no route: one label for all of them.
UNMATCHED: Final = "unmatched"


class Metrics:
    """The series of one app; :meth:`observe` is called once per request."""

    def __init__(self, manager: uv_envs.EnvManager) -> None:
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
        self.registry.register(_ManagerCollector(manager))

    def observe(self, scope: dict[str, Any], status: int, started: float) -> None:
        """Count one answered request (``started``: its ``time.monotonic()``)."""
        route = scope.get("route")
        template = getattr(route, "path", None) or UNMATCHED
        self.requests.labels(scope.get("method", ""), template, str(status)).inc()
        self.latency.labels(template).observe(time.monotonic() - started)


class _ManagerCollector:
    """What the manager knows, read at scrape time."""

    def __init__(self, manager: uv_envs.EnvManager) -> None:
        self._manager = manager

    def describe(self) -> list[Any]:
        # Nothing up front: the registry would otherwise collect at registration.
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            GaugeMetricFamily,
        )

        envs = GaugeMetricFamily(
            "uv_envs_environments", "Environments by status", labels=["status"]
        )
        counts: dict[str, int] = {}
        for environment in self._manager.list_environments():
            counts[environment.status.value] = counts.get(environment.status.value, 0) + 1
        for status, count in sorted(counts.items()):
            envs.add_metric([status], count)
        yield envs
        stats = self._manager.events.stats
        yield GaugeMetricFamily(
            "uv_envs_event_subscribers", "Live event watchers", value=stats.subscribers
        )
        yield CounterMetricFamily(
            "uv_envs_events_published", "Events published", value=stats.published
        )
        yield CounterMetricFamily(
            "uv_envs_event_subscribers_dropped",
            "Watchers cut off for falling behind",
            value=stats.cut_off,
        )
        yield CounterMetricFamily(
            "uv_envs_events_dropped", "Events a slow watcher never got", value=stats.dropped
        )
        operations = GaugeMetricFamily(
            "uv_envs_operations_recorded",
            "Operations in the audit trail, by status (RUNNING: in flight now)",
            labels=["status"],
        )
        try:
            for status in uv_envs.OperationStatus:
                page = self._manager.operations(status=status.value, limit=1)
                operations.add_metric([status.value], page.total)
        except uv_envs.UvEnvsError:
            pass  # the audit database is away: the other series still answer
        else:
            yield operations
        relay = relay_counts(self._manager)
        for name, value in sorted((relay or {}).items()):
            yield CounterMetricFamily(
                f"uv_envs_relay_{name}", f"The wheel relay's {name.replace('_', ' ')}", value=value
            )


def install(app: FastAPI, manager: uv_envs.EnvManager) -> None:
    """Serve ``/metrics`` on ``app`` and count its requests; nothing without prometheus-client."""
    try:
        app.state.metrics = Metrics(manager)
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
