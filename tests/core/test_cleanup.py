"""Cleanup (``_core.cleanup``): idle envs and old generations go, busy envs stay."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from uv_envs import EnvKey, EnvManager, EnvStatus, InvalidInput
from uv_envs._store.venvs import tree_size
from uv_envs.testing import RecordingPublisher

from .conftest import KEY, generations, held_in_another_thread


def test_cleanup_deletes_idle_envs(fake_manager: EnvManager, events: RecordingPublisher) -> None:
    idle = EnvKey("wf", "node", "idle")
    used = EnvKey("wf", "node", "used")
    fake_manager.create(idle, packages=["alpha"])
    fake_manager.create(used, packages=["alpha"])

    report = fake_manager.cleanup(idle_seconds=3600)
    assert (report.deleted, report.skipped_busy, report.pruned_generations) == ((), (), 0)

    time.sleep(0.5)
    fake_manager.runtime_env(used)  # a hand-out counts as use
    del events.events[:]
    started = time.time()
    report = fake_manager.cleanup(idle_seconds=0.3)

    assert report.deleted == (idle,)
    assert report.skipped_busy == ()
    assert started <= report.checked_at <= time.time()
    assert fake_manager.status(idle).status is EnvStatus.NOT_FOUND
    assert fake_manager.status(used).status is EnvStatus.READY
    assert events.names == ["EnvironmentDeleted", "EnvironmentCleanupCompleted"]
    assert events.events[0].key == idle
    assert fake_manager.operations(node_id="node").items[0].operation == "cleanup"


def test_cleanup_prunes_old_generations_of_a_used_env(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    fake_manager.sync(KEY)
    fake_manager.sync(KEY)
    env_dir = fake_manager._core.services.layout.env_dir(KEY)
    assert generations(env_dir) == ["1", "2", "3"]
    time.sleep(0.5)
    fake_manager.runtime_env(KEY)

    report = fake_manager.cleanup(idle_seconds=0.3)

    assert report.deleted == ()
    assert report.pruned_generations == 2
    assert generations(env_dir) == ["3"]
    environment = fake_manager.get(KEY)
    assert environment.retired == ()
    assert environment.python_path.exists()
    assert fake_manager.add(KEY, ["gamma"]).environment.generation == 4


def test_cleanup_skips_busy_envs(fake_manager: EnvManager) -> None:
    busy = EnvKey("wf", "node", "busy")
    free = EnvKey("wf", "node", "free")
    fake_manager.create(busy, packages=["alpha"])
    fake_manager.create(free, packages=["alpha"])
    time.sleep(0.05)

    with held_in_another_thread(fake_manager._core.services.layout.lock_file(busy)):
        started = time.monotonic()
        report = fake_manager.cleanup(idle_seconds=0)
        assert time.monotonic() - started < 4, "cleanup waited for a busy env"

    assert report.deleted == (free,)
    assert report.skipped_busy == (busy,)
    assert fake_manager.status(busy).status is EnvStatus.READY
    assert fake_manager.status(free).status is EnvStatus.NOT_FOUND


def test_cleanup_refuses_a_negative_age(fake_manager: EnvManager) -> None:
    with pytest.raises(InvalidInput):
        fake_manager.cleanup(idle_seconds=-1)


def _tree(root: Path) -> dict[str, bytes | str | None]:
    """Every path under the root with its bytes (files) or target (links): what a dry run keeps."""
    tree: dict[str, bytes | str | None] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            tree[name] = os.readlink(path)
        elif path.is_file():
            tree[name] = path.read_bytes()
        else:
            tree[name] = None
    return tree


def test_a_dry_run_deletes_nothing_and_says_what_would_go(
    fake_manager: EnvManager, events: RecordingPublisher
) -> None:
    idle = EnvKey("wf", "node", "idle")
    used = EnvKey("wf", "node", "used")
    fake_manager.create(idle, packages=["alpha"])
    fake_manager.sync(idle)  # a retired generation to prune
    time.sleep(1.5)
    fake_manager.create(used, packages=["beta"])  # used well within the idle age below
    root = fake_manager.settings.root
    records = fake_manager.operations().total
    before = _tree(root)
    del events.events[:]

    planned = fake_manager.cleanup(idle_seconds=1.0, dry_run=True)
    over_budget = fake_manager.cleanup(idle_seconds=3600, max_bytes=0, dry_run=True)

    assert _tree(root) == before
    assert fake_manager.operations().total == records
    assert events.events == []
    assert (planned.dry_run, planned.deleted) == (True, ())
    [removal] = planned.removals
    assert (removal.key, removal.reason) == (idle, "idle")
    assert removal.idle_seconds >= 1.0
    assert planned.pruned_generations == 1
    assert [(r.key, r.reason) for r in over_budget.removals] == [
        (idle, "disk budget"),
        (used, "disk budget"),
    ]

    def stored() -> int:
        return sum(tree_size(root / d) for d in ("envs", "store"))

    fake_manager.runtime_env(used)  # still used: only the idle env goes, however slow the machine
    held = stored()
    done = fake_manager.cleanup(idle_seconds=1.0)
    # Its own files and the shared venv only it links: within a few bytes of what went.
    freed = held - stored()
    assert freed * 0.95 <= removal.bytes <= freed
    assert done.deleted == (idle,)
    assert [(r.key, r.reason) for r in done.removals] == [(idle, "idle")]
    assert not done.dry_run
