"""Helpers shared by the tests of the core services: the key, snapshots of an env's folder,
a manager over the fakes with other settings, and a lock held from another thread.

The fixtures ``fake_manager``, ``fake_uv`` and ``events`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uv_envs import EnvKey, EnvManager, Settings
from uv_envs._locks import locks as _locking
from uv_envs.testing import FakePythonFinder, FakeUvExecutor, RecordingPublisher

KEY = EnvKey("ml_pipeline", "rag", "v1")
RUNNING_VERSION = ".".join(str(p) for p in sys.version_info[:3])


def make_manager(
    tmp_path: Path,
    executor: FakeUvExecutor,
    publish: RecordingPublisher | None = None,
    *,
    python_finder: FakePythonFinder | None = None,
    **settings: object,
) -> EnvManager:
    options: dict[str, Any] = {"root": tmp_path / "root", "lock_timeout": 5, **settings}
    return EnvManager(
        Settings(**options),
        executor=executor,
        python_finder=python_finder or FakePythonFinder(),
        publish=publish,
    )


def snapshot(env_dir: Path) -> dict[str, Any]:
    """Everything a failed operation must leave as it was."""
    venv = env_dir / ".venv"
    return {
        "files": {
            n: (env_dir / n).read_bytes() for n in ("pyproject.toml", "uv.lock", "metadata.json")
        },
        "links": {
            n: os.readlink(env_dir / n) for n in (".venv", "pyproject.toml", "uv.lock", "current")
        },
        "gens": generations(env_dir),
        "venv": sorted(str(p.relative_to(venv)) for p in venv.rglob("*")),
        "venv_target": (env_dir / ".venv").resolve(),
    }


def generations(env_dir: Path) -> list[str]:
    return sorted((p.name for p in (env_dir / "gens").iterdir()), key=int)


def current(env_dir: Path) -> str:
    return os.readlink(env_dir / "current")


def env_dirs_under(root: Path) -> list[Path]:
    envs = root / "envs"
    return sorted(p for p in envs.glob("*/*/*")) if envs.exists() else []


@contextlib.contextmanager
def held_in_another_thread(path: Path) -> Iterator[None]:
    """Hold an env's lock from another thread for the duration of the block."""
    acquired = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with _locking.hold(path, timeout=10, what="the test"):
            acquired.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert acquired.wait(10), "the other thread did not get the lock"
        yield
    finally:
        release.set()
        holder.join(30)
