"""File-system steps on one environment directory: links, generations, removal.

Every function here is called with the env's lock held (``touch`` and
``last_used`` excepted: they are single file operations). Nothing here knows
about uv or the metadata record.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import attrs

from uv_envs._models import Environment, EnvKey
from uv_envs._store.layout import Layout
from uv_envs._store.metadata import fsync_directory
from uv_envs._store.venvs import VenvStore

LINKS = {
    ".venv": "current/.venv",
    "pyproject.toml": "current/pyproject.toml",
    "uv.lock": "current/uv.lock",
}


def _current_target(generation: int) -> str:
    return f"gens/{generation}"


def current_dir(environment: Environment) -> Path:
    """The current generation's folder (through ``current``, as reads see it)."""
    env_dir = environment.env_path
    try:
        return env_dir / os.readlink(env_dir / "current")
    except OSError:
        return Layout.generation_dir(env_dir, environment.generation)


@attrs.define
class EnvDirs:
    """The on-disk side of environments under one :class:`Layout`."""

    layout: Layout
    venv_store: VenvStore

    def make(self, env_dir: Path) -> None:
        """Create an env directory; another process may be removing an empty parent meanwhile."""
        for _ in range(10):
            env_dir.parent.mkdir(parents=True, exist_ok=True)
            try:
                env_dir.mkdir()
            except FileNotFoundError:
                continue
            return
        env_dir.mkdir()

    @staticmethod
    def link_top_level(env_dir: Path) -> None:
        """``.venv``, ``pyproject.toml`` and ``uv.lock`` at the top, through ``current``."""
        for name, target in LINKS.items():
            os.symlink(target, env_dir / name)

    @staticmethod
    def point_current(env_dir: Path, generation: int) -> None:
        """Switch ``current`` to a generation with one atomic rename."""
        temporary = env_dir / f".current.{uuid.uuid4().hex}"
        os.symlink(_current_target(generation), temporary)
        os.replace(temporary, env_dir / "current")
        fsync_directory(env_dir)

    @staticmethod
    def points_at(env_dir: Path, generation: int) -> bool:
        """Whether ``current`` points at ``generation`` (not after a switch a process died in)."""
        try:
            return os.readlink(env_dir / "current") == _current_target(generation)
        except OSError:
            return False

    @staticmethod
    def current_dir(environment: Environment) -> Path:
        """The current generation's folder, resolved once so all reads see one generation."""
        return current_dir(environment)

    @staticmethod
    def generation_numbers(env_dir: Path) -> list[int]:
        try:
            return [int(p.name) for p in (env_dir / "gens").iterdir() if p.name.isdigit()]
        except FileNotFoundError:
            return []

    def remove_generation(self, env_dir: Path, generation: int) -> None:
        gen_dir = self.layout.generation_dir(env_dir, generation)
        self.venv_store.release(gen_dir)
        shutil.rmtree(gen_dir, ignore_errors=True)

    def remove(self, key: EnvKey) -> None:
        """Remove an env dir: one rename into the trash (atomic), then the slow delete."""
        env_dir = self.layout.env_dir(key)
        if not (env_dir.exists() or env_dir.is_symlink()):
            return
        for number in self.generation_numbers(env_dir):
            self.venv_store.release(self.layout.generation_dir(env_dir, number))
        shutil.rmtree(self.layout.lease_dir(key), ignore_errors=True)
        self.layout.trash_dir.mkdir(parents=True, exist_ok=True)
        target = self.layout.trash_dir / uuid.uuid4().hex
        env_dir.rename(target)
        fsync_directory(env_dir.parent)
        shutil.rmtree(target, ignore_errors=True)
        # Drop the node and workflow folders once empty, so "gone" means gone.
        for parent in (env_dir.parent, env_dir.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break

    @staticmethod
    def remove_temporaries(env_dir: Path) -> list[str]:
        """Delete temp links of switches that died; the caller holds the env lock.

        :meth:`point_current` makes them only under that lock, so any found now
        were left by a process that died between creating and renaming one.
        """
        removed: list[str] = []
        for path in env_dir.glob(".current.*"):
            path.unlink(missing_ok=True)
            removed.append(path.name)
        return removed

    def empty_trash(self) -> None:
        trash = self.layout.trash_dir
        if trash.is_dir():
            for entry in trash.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)

    def touch(self, environment: Environment) -> None:
        """Record a hand-out of the env, for idle cleanup (no lock, no metadata write)."""
        with contextlib.suppress(OSError):
            self.layout.last_used_file(environment.env_path).touch()

    def last_used(self, environment: Environment) -> float:
        try:
            touched = self.layout.last_used_file(environment.env_path).stat().st_mtime
        except OSError:
            touched = 0.0
        return max(environment.updated_at, touched)
