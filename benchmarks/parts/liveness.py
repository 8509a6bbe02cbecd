"""Part ``metadata`` (continued): the ``/proc`` scan that keeps envs live processes use.

Over the root of 10,000 envs ``bench_metadata`` made, with 500 extra processes
on the host (``sleep``: 100 with their working directory in an env, 400
elsewhere), it measures the scan alone, a cleanup that deletes nothing (one
scan per call), a delete refused because a process uses the env (one scan per
delete), and a cleanup with every env a candidate and all of them in use (one
process holding a file of the store entry all 10,000 envs share open).
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from parts.common import Bench, fmt_s, median, timed
from parts.metadata import SYNTHETIC_ENVS
from uv_envs import EnvironmentInUse, EnvKey, EnvManager, ProcScanner

PROCESSES = 500
IN_ENVS = 100


@contextmanager
def sleepers(env_dirs: list[Path], others: int) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``sleep`` processes: one per env dir as its cwd, then ``others`` in a temp dir."""
    started: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as elsewhere:
        try:
            for cwd in [*env_dirs, *([Path(elsewhere)] * others)]:
                process = subprocess.Popen(["sleep", "3600"], cwd=cwd)  # noqa: S607 - coreutils
                started.append(process)
            yield started
        finally:
            for process in started:
                process.kill()
            for process in started:
                process.wait()


@contextmanager
def holding_open(path: Path) -> Iterator[None]:
    """A ``sleep`` with ``path`` open as its stdin: it never names it on its command line."""
    with path.open("rb") as stdin:
        process = subprocess.Popen(["sleep", "3600"], stdin=stdin)  # noqa: S607 - coreutils
    try:
        yield
    finally:
        process.kill()
        process.wait()


def bench_liveness(bench: Bench, manager: EnvManager) -> None:
    environments = manager.list_environments()
    in_use = [e.env_path for e in environments[:IN_ENVS]]
    scanner = ProcScanner()
    root = manager.settings.root
    with sleepers(in_use, PROCESSES - IN_ENVS):
        scans = []
        for _ in range(bench.reps):
            seconds, views = timed(lambda: scanner.scan(root))
            assert len(views) >= IN_ENVS, len(views)
            scans.append(seconds)
        bench.extra["liveness_scan"] = median(scans)
        cleanups = [timed(lambda: manager.cleanup(idle_seconds=1e9))[0] for _ in range(bench.reps)]
        bench.extra["liveness_cleanup"] = median(cleanups)
        refused = []
        for _ in range(bench.reps):
            seconds, _ = timed(lambda: _refused(manager, environments[0].key))
            refused.append(seconds)
        bench.extra["liveness_delete_refused"] = median(refused)
    # A file of the one store entry every env links, held open: all 10,000 are in use.
    venv = (environments[0].env_path / ".venv").resolve()
    store_file = next(p for p in venv.rglob("*") if p.is_file() and not p.is_symlink())
    with holding_open(store_file):
        seconds, report = timed(lambda: manager.cleanup(idle_seconds=0))
    assert not report.deleted, report.deleted
    assert len(report.skipped_in_use) == len(environments), len(report.skipped_in_use)
    bench.extra["liveness_all_in_use"] = seconds


def _refused(manager: EnvManager, key: EnvKey) -> None:
    with suppress(EnvironmentInUse):
        manager.delete(key)
        msg = "the delete of an env in use went through"
        raise AssertionError(msg)


def liveness_rows(bench: Bench) -> list[str]:
    """The rows of the metadata table this part measured (none if it did not run)."""
    n, p = f"{SYNTHETIC_ENVS:,}", f"{PROCESSES:,}"
    labels = {
        "liveness_scan": f"/proc scan, {p} more processes, {n}-env root",
        "liveness_cleanup": f"cleanup scan over {n} envs, {p} more processes",
        "liveness_delete_refused": "delete refused: the env is in use (one scan)",
        "liveness_all_in_use": f"cleanup, all {n} envs idle and in use (an audit record each)",
    }
    return [
        f"| {label} | {fmt_s(bench.extra[k])} |" for k, label in labels.items() if k in bench.extra
    ]
