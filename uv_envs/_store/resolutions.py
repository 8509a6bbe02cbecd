"""Stored resolutions: reuse one without uv when its record vouches for it, else check or resolve.

The three ways a create of a spec gets its ``uv.lock``, cheapest first:

1. the stored lock, trusted: its record (``provenance``) matches the bytes,
   the uv binary, the index settings and the project. No subprocess, no TOML
   parsing: the store id comes from the recorded packages digest.
2. the stored lock, checked: ``uv lock --check --offline``, one subprocess,
   then the lock is parsed once and a record written, so the next create
   takes path 1.
3. ``uv lock``: the new lock is stored, parsed once and recorded.

The caller holds the spec's lock (``locks/spec-<hash>.lock``) throughout, so
a stored lock and its record are written by one process at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs

from uv_envs._models import EnvSpec, IndexSettings
from uv_envs._store.provenance import Provenance, ResolutionRecords, index_digest, project_digest
from uv_envs._store.resolutions import ResolutionStore, lock_packages_digest
from uv_envs._uv.executor import UvExecutor, UvResult, uv_identity


@attrs.frozen
class Resolution:
    """How a generation got its lock: ``resolved`` by uv, and the digest of its packages.

    ``packages`` is None when uv wrote the lock some other way (``uv add -r``);
    the store id is then derived by parsing the lock.
    """

    resolved: bool
    packages: str | None = None


@attrs.define
class StoredResolutions:
    """The lock store and its records, for one root and one set of index settings."""

    locks: ResolutionStore
    records: ResolutionRecords
    index: IndexSettings
    executor: UvExecutor  # only asked which uv it runs (``IdentifiesUv``), never run here

    def provenance(self, spec: EnvSpec) -> Provenance:
        return Provenance(
            uv=uv_identity(self.executor),
            index=index_digest(self.index),
            project=project_digest(spec.packages, spec.python),
        )

    def trusted(self, digest: str, spec: EnvSpec, gen_dir: Path) -> Resolution | None:
        """Put the stored lock into ``gen_dir`` if its record vouches for it; else None.

        Safe without the spec's lock: the lock and its record are each
        replaced atomically, and the record names the lock's digest, so a
        lock and a record from different writes never match.
        """
        stored = self.locks.get(digest)
        if stored is None:
            return None
        record = self.records.trusted(digest, stored, self.provenance(spec))
        if record is None:
            return None
        (gen_dir / "uv.lock").write_bytes(stored)
        return Resolution(resolved=False, packages=record.packages)

    def reuse(
        self, digest: str, spec: EnvSpec, gen_dir: Path, check: Callable[[], UvResult]
    ) -> Resolution | None:
        """Put the stored lock of ``digest`` into ``gen_dir`` if it may be used; None: resolve.

        ``check`` runs ``uv lock --check --offline`` in ``gen_dir``; it is
        called only when no record vouches for the stored lock.
        """
        stored = self.locks.get(digest)
        if stored is None:
            return None
        provenance = self.provenance(spec)
        lock_file = gen_dir / "uv.lock"
        lock_file.write_bytes(stored)
        record = self.records.trusted(digest, stored, provenance)
        if record is not None:
            return Resolution(resolved=False, packages=record.packages)
        if not check().ok:
            lock_file.unlink(missing_ok=True)
            return None
        packages = lock_packages_digest(stored.decode())
        self.records.put(digest, stored, packages, provenance)
        return Resolution(resolved=False, packages=packages)

    def remember(self, digest: str, spec: EnvSpec, gen_dir: Path) -> Resolution:
        """Store the lock uv just resolved in ``gen_dir``, with its record."""
        lock = (gen_dir / "uv.lock").read_bytes()
        self.locks.put(digest, lock)
        packages = lock_packages_digest(lock.decode())
        self.records.put(digest, lock, packages, self.provenance(spec))
        return Resolution(resolved=True, packages=packages)
