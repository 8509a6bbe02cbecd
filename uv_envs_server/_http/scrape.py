"""What ``/metrics`` reads from the manager when scraped: a prometheus-client collector.

Every series here is cheap to read: ``EnvManager.stats()`` (operations and uv
runs counted in memory as they ended, the store's sizes as recorded when each
entry was built), the event stream's counts, the envs' records, three
one-row audit queries and the relay's counters. Counts are of this server's
manager since it started; Prometheus' ``rate()`` handles restarts.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import uv_envs
from uv_envs_server._nodes import relay_counts

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

    from uv_envs_server._request_ids import CallCounts


class ManagerCollector:
    """What the manager knows, read at scrape time."""

    def __init__(self, manager: uv_envs.EnvManager) -> None:
        self._manager = manager

    def describe(self) -> list[Any]:
        # Nothing up front: the registry would otherwise collect at registration.
        return []

    def collect(self) -> Iterator[Any]:
        yield from self._envs()
        yield from self._work(self._manager.stats())
        yield from self._events()
        yield from self._audit()
        yield from self._relay()

    def _envs(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        envs = GaugeMetricFamily(
            "uv_envs_environments", "Environments by status", labels=["status"]
        )
        counts: dict[str, int] = {}
        for environment in self._manager.list_environments():
            counts[environment.status.value] = counts.get(environment.status.value, 0) + 1
        for status, count in sorted(counts.items()):
            envs.add_metric([status], count)
        yield envs

    @staticmethod
    def _work(stats: uv_envs.ManagerStats) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        yield from _timed(
            "uv_envs_operations",
            "uv_envs_operation_duration_seconds",
            "Operations this server's manager ended, by kind and outcome (SUCCESS, FAILED)",
            ("kind", "outcome"),
            stats.operations,
        )
        yield GaugeMetricFamily(
            "uv_envs_operations_running",
            "Operations this server's manager has begun and not ended",
            value=stats.operations_running,
        )
        yield from _timed(
            "uv_envs_uv_runs",
            "uv_envs_uv_run_duration_seconds",
            "uv commands run, by command (lock, sync, add...) and outcome (ok, failed, error)",
            ("command", "outcome"),
            stats.uv_runs,
        )
        yield GaugeMetricFamily(
            "uv_envs_store_entries", "Built venvs in the shared store", value=stats.store_entries
        )
        yield GaugeMetricFamily(
            "uv_envs_store_bytes",
            "Bytes of the shared store's venvs, as recorded when each was built",
            value=stats.store_bytes,
        )

    def _events(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            GaugeMetricFamily,
        )

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

    def _audit(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

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

    def _relay(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily  # noqa: PLC0415

        relay = relay_counts(self._manager)
        for name, value in sorted((relay or {}).items()):
            yield CounterMetricFamily(
                f"uv_envs_relay_{name}", f"The wheel relay's {name.replace('_', ' ')}", value=value
            )


class GrpcCollector:
    """The calls a gRPC server in the same process answered, read at scrape time."""

    def __init__(self, calls: CallCounts) -> None:
        self._calls = calls

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (  # noqa: PLC0415
            CounterMetricFamily,
            SummaryMetricFamily,
        )

        labels = ["method", "code"]
        counts = CounterMetricFamily(
            "uv_envs_grpc_requests", "gRPC calls answered, by method and status code", labels=labels
        )
        durations = SummaryMetricFamily(
            "uv_envs_grpc_request_duration_seconds",
            "Seconds gRPC calls took, by method and status code",
            labels=labels,
        )
        for (method, code), (count, seconds) in sorted(self._calls.snapshot().items()):
            counts.add_metric([method, code], count)
            durations.add_metric([method, code], count_value=count, sum_value=seconds)
        yield counts
        yield durations


def _timed(
    counter: str,
    histogram: str,
    documentation: str,
    labels: tuple[str, str],
    timings: Mapping[tuple[str, str], uv_envs.Timings],
) -> Iterator[Any]:
    """A counter and a duration histogram of the same runs, by the same two labels."""
    from prometheus_client.core import (  # noqa: PLC0415
        CounterMetricFamily,
        HistogramMetricFamily,
    )

    counts = CounterMetricFamily(counter, documentation, labels=list(labels))
    durations = HistogramMetricFamily(histogram, f"Seconds: {documentation}", labels=list(labels))
    for pair, timed in sorted(timings.items()):
        counts.add_metric(list(pair), timed.count)
        buckets = [(_le(bound), count) for bound, count in timed.buckets]
        durations.add_metric(list(pair), buckets, sum_value=timed.seconds)
    yield counts
    yield durations


def _le(bound: float) -> str:
    """A bucket's upper bound as Prometheus spells it (``0.5``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(bound)
