"""Where everything lives under the root. Pure path arithmetic, no I/O.

::

    <root>/
      envs/<workflow_id>/<node_id>/<version_id or @>/   one environment
        metadata.json                                 the record and commit point
        pyproject.toml -> current/pyproject.toml
        uv.lock        -> current/uv.lock
        .venv          -> current/.venv
        current        -> gens/<N>                    switched with one rename
        gens/<N>/{pyproject.toml, uv.lock}            immutable generations
        gens/<N>/.venv -> <root>/store/<id>/.venv     a shared, read-only venv
                                                      (sync: a private .venv)
        .last-used                                    touched on each hand-out
      store/<id>/{.venv/, refs/, .complete, .size,    venvs by (lock, interpreter);
                  .compiled, .damaged}                the entry's files: see store.py
      bytecode/<tag>-<magic>/<xx>/<sha256>.pyc        .pyc by source digest, hard-linked
                                                      into store entries (_bytecode.worker)
      lockstore/<spec hash>.lock                      resolved locks by spec
      lockstore/<spec hash>.lock.json                 what a stored lock was vouched for under
      leases/<key hash>/<gen>-<uuid>.lease            one locked file per lease
      deleting/<key hash>                             a delete deferred while the env is in use
      locks/<key hash>.lock                           one lock file per env
      locks/spec-<hash>.lock, store-<id>.lock         single-flight per spec and entry
      locks/compile-<id>.lock                         the background compiler of an entry
      locks/install-slot-<n>.lock                     the install cap
      trash/                                          deletes land here first
      cache/                                          uv's cache (the default)
      audit.sqlite3                                   the audit trail (the default)

Ids are restricted to ``[A-Za-z0-9._-]`` and are never ``.`` or ``..``, so
each id is exactly one path component, and nesting by component keeps the map
from keys to directories injective. An empty version id maps to ``@``, which
no id can spell.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import attrs

from uv_envs._models import EnvKey

EMPTY_VERSION_DIR = "@"


def _subdirs(directory: Path) -> list[Path]:
    try:
        return sorted(p for p in directory.iterdir() if p.is_dir() and not p.is_symlink())
    except (FileNotFoundError, NotADirectoryError):
        return []


@attrs.frozen
class Layout:
    """Paths under one root."""

    root: Path

    @property
    def envs_dir(self) -> Path:
        return self.root / "envs"

    @property
    def locks_dir(self) -> Path:
        return self.root / "locks"

    @property
    def trash_dir(self) -> Path:
        return self.root / "trash"

    @property
    def store_dir(self) -> Path:
        return self.root / "store"

    @property
    def bytecode_dir(self) -> Path:
        """Each compiled module once, by its source's digest, linked into store entries."""
        return self.root / "bytecode"

    @property
    def lockstore_dir(self) -> Path:
        return self.root / "lockstore"

    @property
    def leases_dir(self) -> Path:
        return self.root / "leases"

    @property
    def relay_dir(self) -> Path:
        """Where a cluster service's wheel relay keeps the files it fetched."""
        return self.root / "relay"

    @property
    def audit_db(self) -> Path:
        return self.root / "audit.sqlite3"

    @property
    def default_cache_dir(self) -> Path:
        return self.root / "cache"

    def spec_lock(self, digest: str) -> Path:
        """Held while a spec is resolved, so concurrent creates of one spec resolve once."""
        return self.locks_dir / f"spec-{digest[:40]}.lock"

    def store_lock(self, entry_name: str) -> Path:
        """Held while a store entry is built, linked or pruned."""
        return self.locks_dir / f"store-{entry_name}.lock"

    def install_slot(self, number: int) -> Path:
        return self.locks_dir / f"install-slot-{number}.lock"

    def stored_lock(self, digest: str) -> Path:
        """The ``uv.lock`` a spec resolved to."""
        return self.lockstore_dir / f"{digest}.lock"

    def lock_record(self, digest: str) -> Path:
        """What the stored lock of a spec was vouched for under (see ``_store.provenance``)."""
        return self.lockstore_dir / f"{digest}.lock.json"

    def compile_lock(self, entry_name: str) -> Path:
        """Held while the background compiler writes bytecode into a store entry."""
        return self.locks_dir / f"compile-{entry_name}.lock"

    def store_entry(self, entry_name: str) -> Path:
        return self.store_dir / entry_name

    def lease_dir(self, key: EnvKey) -> Path:
        return self.leases_dir / self.lock_file(key).stem

    def pending_delete(self, key: EnvKey) -> Path:
        """Names ``key`` while its delete waits for its users (the record says ``DELETING``)."""
        return self.root / "deleting" / self.lock_file(key).stem

    def env_dir(self, key: EnvKey) -> Path:
        """The directory of one environment."""
        return _env_dir(self.root, key)

    def key_for(self, env_dir: Path) -> EnvKey:
        """Invert :meth:`env_dir` for a directory found on disk."""
        relative = env_dir.relative_to(self.envs_dir)
        workflow_id, node_id, version = relative.parts
        return EnvKey(workflow_id, node_id, "" if version == EMPTY_VERSION_DIR else version)

    def keys_on_disk(self) -> list[EnvKey]:
        """Keys of every env directory, with or without metadata (crash debris included)."""
        keys: list[EnvKey] = []
        for workflow in _subdirs(self.envs_dir):
            for node in _subdirs(workflow):
                for version in _subdirs(node):
                    try:
                        keys.append(self.key_for(version))
                    except ValueError:
                        continue  # a folder no key can name: not ours
        return keys

    def lock_file(self, key: EnvKey) -> Path:
        """The lock file of a key; outside the env dir so deleting the env keeps the lock."""
        digest = hashlib.sha256(
            f"{key.workflow_id}\0{key.node_id}\0{key.version_id}".encode()
        ).hexdigest()
        return self.locks_dir / f"{digest[:40]}.lock"

    @staticmethod
    def metadata_file(env_dir: Path) -> Path:
        return env_dir / "metadata.json"

    @staticmethod
    def generation_dir(env_dir: Path, generation: int) -> Path:
        return env_dir / "gens" / str(generation)

    @staticmethod
    def last_used_file(env_dir: Path) -> Path:
        return env_dir / ".last-used"


@functools.lru_cache(maxsize=4096)
def _env_dir(root: Path, key: EnvKey) -> Path:
    # Paths are immutable: one join per key, not four per call. A status read asks for
    # the same env's folder several times, and pathlib's joins were a tenth of its CPU.
    version = key.version_id or EMPTY_VERSION_DIR
    return root / "envs" / key.workflow_id / key.node_id / version
