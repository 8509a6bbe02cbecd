"""Counts and durations of what a manager ran, kept in memory for ``EnvManager.stats``.

:class:`ManagerStats` is what ``stats()`` answers (as :class:`StreamStats` is
the event stream's own counts). The counting wrappers
(:mod:`uv_envs._audit.counted`, :mod:`uv_envs._uv.counted`) add to a
:class:`Tally` as each operation or uv run ends; reading one is a copy under a
lock, so a metrics scrape never scans the audit trail or the disk.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping
from typing import Final

import attrs


@attrs.frozen
class Timings:
    """How often something ran and for how long: a count, a sum, cumulative buckets.

    ``buckets`` pairs each upper bound, in seconds, with how many runs took at
    most that long (the last bound is ``inf``, so its count is ``count``): the
    shape of a Prometheus histogram.

    .. versionadded:: 0.3.0
    """

    count: int
    seconds: float
    buckets: tuple[tuple[float, int], ...]


@attrs.frozen
class ManagerStats:
    """What :meth:`EnvManager.stats` reports: this manager's work since it started.

    ``operations`` is keyed by (kind, outcome): ``("create", "SUCCESS")``,
    ``("add", "FAILED")``... one entry per kind of audited operation that ended
    here, each counted once when its audit record was finished.
    ``operations_running`` are those begun and not ended. ``uv_runs`` is keyed
    by (command, outcome): ``("lock", "ok")``, ``("sync", "failed")`` (uv
    exited non-zero) or ``"error"`` (uv timed out, was cancelled, or could not
    start). ``store_entries`` and ``store_bytes`` are the shared venv store's
    complete entries and their sizes as recorded when each was built (no tree
    walk: an entry whose size was never recorded adds 0 bytes).

    .. versionadded:: 0.3.0
    """

    operations: Mapping[tuple[str, str], Timings]
    operations_running: int
    uv_runs: Mapping[tuple[str, str], Timings]
    store_entries: int
    store_bytes: int


#: Upper bounds, in seconds, of the duration buckets: from a warm ensure to a cold build.
BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)


@attrs.define
class _Counts:
    count: int = 0
    seconds: float = 0.0
    # One per bound of BUCKETS, plus one for longer runs (not cumulative: summed when read).
    in_bucket: list[int] = attrs.field(factory=lambda: [0] * (len(BUCKETS) + 1))

    def timings(self) -> Timings:
        cumulative, total = [], 0
        for bound, count in zip((*BUCKETS, float("inf")), self.in_bucket, strict=True):
            total += count
            cumulative.append((bound, total))
        return Timings(count=self.count, seconds=self.seconds, buckets=tuple(cumulative))


@attrs.define
class Tally:
    """Durations by a pair of labels, and how many began and have not ended; thread-safe."""

    _counts: dict[tuple[str, str], _Counts] = attrs.field(factory=dict, init=False)
    _running: int = attrs.field(default=0, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def began(self) -> None:
        """One more is running (:meth:`ended` takes it back)."""
        with self._lock:
            self._running += 1

    def ended(self, labels: tuple[str, str], seconds: float, *, began: bool = True) -> None:
        """Count one run of ``labels`` that took ``seconds`` (``began``: it was counted running)."""
        seconds = max(seconds, 0.0)
        with self._lock:
            counts = self._counts.setdefault(labels, _Counts())
            counts.count += 1
            counts.seconds += seconds
            counts.in_bucket[bisect.bisect_left(BUCKETS, seconds)] += 1
            if began:
                self._running -= 1

    @property
    def running(self) -> int:
        with self._lock:
            return self._running

    def snapshot(self) -> dict[tuple[str, str], Timings]:
        """Every label pair counted so far and its timings."""
        with self._lock:
            return {labels: counts.timings() for labels, counts in self._counts.items()}
