"""``EnvManager.stats``: each operation and uv run counted once, as it ended; the store's size."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from uv_envs import EnvManager, Timings, UvError
from uv_envs.testing import FakeUvExecutor

from .conftest import KEY


def _cumulative(timings: Timings) -> None:
    bounds = [bound for bound, _ in timings.buckets]
    counts = [count for _, count in timings.buckets]
    assert bounds == sorted(bounds)
    assert math.isinf(bounds[-1])
    assert counts == sorted(counts)
    assert counts[-1] == timings.count


def test_stats_count_each_operation_once_as_the_audit_trail_has_it(
    fake_manager: EnvManager, fake_uv: FakeUvExecutor
) -> None:
    assert fake_manager.stats().operations == {}
    fake_manager.create(KEY, packages=["alpha==1.0"])
    fake_manager.ensure(KEY, packages=["alpha==1.0"])
    fake_manager.add(KEY, ["gamma"])
    fake_uv.fail_next("remove")
    with pytest.raises(UvError):
        fake_manager.remove(KEY, ["gamma"])
    fake_manager.sync(KEY)

    stats = fake_manager.stats()
    audited = Counter((r.operation, r.status) for r in fake_manager.operations(limit=100).items)
    assert {labels: t.count for labels, t in stats.operations.items()} == audited
    assert stats.operations[("remove", "FAILED")].count == 1
    assert stats.operations_running == 0
    for timings in stats.operations.values():
        _cumulative(timings)
        assert timings.seconds >= 0

    runs = stats.uv_runs
    assert runs[("remove", "failed")].count == 1
    for command in ("lock", "sync", "add", "remove"):
        counted = sum(t.count for (name, _), t in runs.items() if name == command)
        assert counted == fake_uv.count(command), command
    for timings in runs.values():
        _cumulative(timings)

    assert stats.store_entries >= 1
    assert stats.store_bytes > 0


def test_stats_of_a_new_manager_are_empty(fake_manager: EnvManager) -> None:
    stats = fake_manager.stats()
    assert (stats.operations, stats.uv_runs, stats.operations_running) == ({}, {}, 0)
    assert (stats.store_entries, stats.store_bytes) == (0, 0)
