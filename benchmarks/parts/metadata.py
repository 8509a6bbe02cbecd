"""Part ``metadata``: the status of one env, and list and cleanup over 10,000 envs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from parts.common import Bench, median, timed
from uv_envs import EnvKey, EnvManager, EnvStatus, Settings
from uv_envs.testing import FakePythonFinder, FakeUvExecutor

SYNTHETIC_ENVS = 10_000


def bench_status(bench: Bench, base: EnvManager, key: EnvKey) -> None:
    calls = []
    for _ in range(2000):
        seconds, report = timed(lambda: base.status(key))
        calls.append(seconds)
    assert report.status is EnvStatus.READY
    calls.sort()
    bench.extra["status"] = {"median": median(calls), "p99": calls[int(0.99 * len(calls))]}


def bench_metadata(bench: Bench) -> EnvManager:
    """6 and 7: list and cleanup over 10,000 envs, made by creates with the fake uv.

    The fake uv of ``uv_envs.testing`` makes each env's records, links and a
    stand-in venv in a few milliseconds, without a subprocess; list and cleanup
    then run on a real manager over that root, which is returned (for ``parts.liveness``).
    """
    root = bench.fresh("synthetic")
    maker = EnvManager(
        Settings(root=root, background_bytecode=False, ray="off", lock_timeout=60),
        executor=FakeUvExecutor({"requests": ["2.32.0"]}),
        python_finder=FakePythonFinder(),
    )

    def write(index: int) -> None:
        key = EnvKey(f"wf{index // 1000}", f"node{index // 10 % 100}", f"v{index % 10}")
        maker.create(key, packages=["requests"])

    with ThreadPoolExecutor(8) as pool:
        seconds, _ = timed(lambda: list(pool.map(write, range(SYNTHETIC_ENVS))))
    maker.close()
    bench.extra["synthetic_write"] = seconds
    manager = bench.warm_manager(root, bench.warm_uv_cache)
    lists = []
    for _ in range(bench.reps):
        seconds, found = timed(manager.list_environments)
        assert len(found) == SYNTHETIC_ENVS, len(found)
        lists.append(seconds)
    bench.extra["list"] = median(lists)
    first, report = timed(lambda: manager.cleanup(idle_seconds=1e9))
    assert not report.deleted, report.deleted
    cleanups = [timed(lambda: manager.cleanup(idle_seconds=1e9))[0] for _ in range(bench.reps)]
    bench.extra["cleanup_first"] = first
    bench.extra["cleanup"] = median(cleanups)
    return manager
