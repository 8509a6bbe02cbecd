"""What deleting envs frees: their own files, and the shared venvs only they link.

A shared venv (``store/<id>``) is freed with the last env that links it, so
the bytes of an env depend on which others go with it: ``gone`` names them.
Nothing here writes; cleanup reports these bytes, and a dry run plans by them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from pathlib import Path

from uv_envs._store.venvs import REFS, linked_entry, recorded_size, tree_size


def freed_bytes(store_dir: Path, env_dir: Path, gone: Collection[Path] = ()) -> int:
    """Bytes deleting ``env_dir`` frees, the envs in ``gone`` being deleted already."""
    leaving = {env_dir, *gone}
    total = tree_size(env_dir)
    gens = env_dir / "gens"
    entries: set[Path] = set()
    with contextlib.suppress(OSError):
        for gen_dir in gens.iterdir():
            entry = linked_entry(store_dir, gen_dir)
            if entry is not None:
                entries.add(entry)
    for entry in entries:
        if all(_env_of(user) in leaving for user in _users(entry)):
            size = recorded_size(entry)
            # The size recorded at build time; the references came after it.
            total += tree_size(entry) if size is None else size + tree_size(entry / REFS)
    return total


def _users(entry: Path) -> list[Path]:
    """The generation folders whose references ``entry`` holds (read only: no pruning)."""
    users: list[Path] = []
    with contextlib.suppress(OSError):
        for ref in (entry / REFS).iterdir():
            with contextlib.suppress(OSError):
                users.append(Path(ref.read_text()))
    return users


def _env_of(gen_dir: Path) -> Path:
    """``<env>/gens/<N>`` -> ``<env>``."""
    return gen_dir.parent.parent
