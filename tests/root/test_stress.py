"""Multi-process stress: 4 processes x N seeded random operations on 6 shared keys, real uv.

Afterwards every env is READY and importable or absent, every metadata.json
reads, and the audit log holds exactly one finished record per operation that
ran. ``UV_ENVS_STRESS_OPS`` (default 50), ``UV_ENVS_STRESS_PROCS`` (4) and
``UV_ENVS_STRESS_SEED`` scale and vary it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uv_envs import EnvKey, EnvManager, EnvStatus, Settings
from uv_envs._store.metadata import environment_from_json
from uv_envs._uv.python import PythonFinder

WORKER = Path(__file__).parents[1] / "support" / "stress_worker.py"
OPERATIONS = int(os.environ.get("UV_ENVS_STRESS_OPS", "50"))
PROCESSES = int(os.environ.get("UV_ENVS_STRESS_PROCS", "4"))
SEED = os.environ.get("UV_ENVS_STRESS_SEED", "20261126")
KEYS = 6


def stray_files(root: Path) -> list[Path]:
    """Temp files, half-built generations and trash entries that must not outlive an operation."""
    found = [*root.rglob(".*.tmp"), *root.rglob(".current.*")]
    found += list((root / "trash").glob("*")) if (root / "trash").exists() else []
    return found


def describe(manager: EnvManager, key: EnvKey) -> str:
    """What a failure message needs: the record, the links, the venv's packages, the audit trail."""
    env_dir = manager._core.services.layout.env_dir(key)
    lines = [f"metadata: {manager._core.services.metadata.load(key)}"]
    for name in ("current", ".venv"):
        with contextlib.suppress(OSError):
            lines.append(f"{name} -> {os.readlink(env_dir / name)}")
    for gen in sorted((env_dir / "gens").glob("*")):
        venv = gen / ".venv"
        target = os.readlink(venv) if venv.is_symlink() else "private"
        complete = (Path(target).parent / ".complete").exists() if venv.is_symlink() else None
        packages = sorted(p.name for p in venv.glob("lib/python*/site-packages/*"))
        lines.append(f"gens/{gen.name}: .venv -> {target} complete={complete} {packages}")
    page = manager.operations(workflow_id=key.workflow_id, node_id=key.node_id, limit=50)
    lines += [f"audit: {r.operation} {r.status} {r.error} {dict(r.metadata)}" for r in page.items]
    return "\n".join(lines)


def check_root(manager: EnvManager, keys: list[EnvKey]) -> dict[str, int]:
    """The consistency checks shared with the crash test; returns counts by status."""
    root = manager.settings.root
    for path in (root / "envs").rglob("metadata.json") if (root / "envs").exists() else []:
        environment_from_json(path.read_bytes(), path)  # raises StorageError when unreadable
    counts: collections.Counter[str] = collections.Counter()
    for key in keys:
        report = manager.status(key)
        counts[report.status.value] += 1
        if report.status is EnvStatus.NOT_FOUND:
            assert not manager._core.services.layout.env_dir(key).exists(), (
                f"{key}: a folder without an env"
            )
            continue
        assert report.status is EnvStatus.READY, f"{key} is {report.status}"
        environment = report.environment
        assert environment is not None
        assert environment.pending_generation is None
        env_dir = environment.env_path
        assert os.readlink(env_dir / "current") == f"gens/{environment.generation}"
        venv_link = env_dir / "gens" / str(environment.generation) / ".venv"
        if venv_link.is_symlink():  # a shared venv of the store (sync builds a private one)
            venv = Path(os.readlink(venv_link))
            assert (venv.parent / ".complete").is_file(), f"{key} links an incomplete venv {venv}"
        known = {environment.generation, *(r.generation for r in environment.retired)}
        assert {int(p.name) for p in (env_dir / "gens").iterdir()} == known, f"{key}: stray gens"
        locked = manager.dependencies(key).locked
        imports = "; ".join(f"import {name}" for name in sorted(locked)) or "pass"
        completed = subprocess.run(
            [str(environment.python_path), "-c", imports],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, (
            f"{key} is READY but fails {imports!r}: {completed.stderr}\n{describe(manager, key)}"
        )
        verified = manager.verify(key)
        assert verified.ok, f"{key}: {verified.problems}\n{describe(manager, key)}"
    assert stray_files(root) == []
    return dict(counts)


def provide(operation: str) -> str:
    # An ensure that builds a new env is recorded as a create, so the two count together.
    return "create/ensure" if operation in {"create", "ensure"} else operation


@pytest.mark.slow
def test_processes_racing_on_shared_keys_lose_nothing(
    settings: Settings, python_finder: PythonFinder
) -> None:
    root = settings.root
    root.mkdir(parents=True)
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                str(root),
                str(settings.cache_dir),
                settings.index.find_links[0],
                f"{SEED}-{number}",
                str(OPERATIONS),
                str(KEYS),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for number in range(PROCESSES)
    ]
    # Every worker is waited for (its pipes closed) before any is judged: a failed one
    # must not leave the others running into the next tests.
    outputs = [worker.communicate(timeout=1200) for worker in workers]
    lines: list[dict[str, str | None]] = []
    for worker, (stdout, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr
        lines += [json.loads(line) for line in stdout.splitlines()]
    assert len(lines) == PROCESSES * OPERATIONS

    manager = EnvManager(settings, python_finder=python_finder)
    # Deletes a worker deferred (another worker's uv held the env) and left pending when
    # it exited are finished by this manager's reaper: wait for it before judging.
    deadline = time.monotonic() + 60
    while manager._core.deleter.pending() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert manager._core.deleter.pending() == [], "deferred deletes left unfinished"
    expected = collections.Counter(
        (line["key"], provide(str(line["op"])), line["recorded"])
        for line in lines
        if line["recorded"]
    )
    page = manager.operations(limit=100_000)
    assert page.total == len(page.items)
    # A deferred delete's completion is recorded by the manager's reaper once the
    # env's last user exits: a record of its own, not one of the workers' operations.
    actual = collections.Counter(
        (f"{r.workflow_id}/{r.node_id}/{r.version_id}", provide(r.operation), r.status)
        for r in page.items
        if not r.metadata.get("completed")
    )
    assert actual == expected, "the audit log does not hold one record per operation"
    assert all(r.finished_at is not None for r in page.items)

    keys = [EnvKey("stress", "node", f"k{i}") for i in range(KEYS)]
    counts = check_root(manager, keys)
    outcomes = collections.Counter(str(line["outcome"]) for line in lines)
    print(  # the figures in docs/reliability.md (pytest -s)
        f"\nstress: {PROCESSES} processes x {OPERATIONS} operations, "
        f"{sum(expected.values())} recorded, outcomes {dict(outcomes)}, final envs {counts}"
    )
    assert manager.recover() == []
