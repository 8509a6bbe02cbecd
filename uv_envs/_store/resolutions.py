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

:class:`ResolutionStore` keeps the files: ``lockstore/<spec hash>.lock``, the ``uv.lock`` a
spec resolved to, so a second env with the same spec skips resolution. ("Lock" elsewhere
means a file lock; a stored ``uv.lock`` is a resolution.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

import attrs

from uv_envs._locks import locks
from uv_envs._models import EnvSpec, IndexSettings
from uv_envs._store.layout import Layout
from uv_envs._store.metadata import write_atomic
from uv_envs._store.provenance import Provenance, ResolutionRecords, index_digest, project_digest
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


@attrs.define
class ResolutionStore:
    """Resolved ``uv.lock`` files by spec hash, each usable for ``max_age`` seconds."""

    layout: Layout
    max_age: float

    @property
    def directory(self) -> Path:
        return self.layout.lockstore_dir

    def path(self, digest: str) -> Path:
        return self.layout.stored_lock(digest)

    def get(self, digest: str) -> bytes | None:
        """The stored lock, unless missing or older than ``max_age``."""
        path = self.path(digest)
        try:
            if time.time() - path.stat().st_mtime > self.max_age:
                return None
            return path.read_bytes()
        except OSError:
            return None

    def put(self, digest: str, data: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path(digest), data)

    def remove_temporaries(self) -> int:
        """Delete temp files of lock writes that died; return how many.

        A stored lock is written under its spec's lock, so a temp file whose
        spec lock is free was left by a dead process.
        """
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for path in self.directory.glob(".*.lock.*.tmp"):
                digest = path.name[1:].split(".", 1)[0]
                spec_lock = self.layout.spec_lock(digest)
                if locks.try_acquire(spec_lock):
                    try:
                        path.unlink(missing_ok=True)
                        removed += 1
                    finally:
                        locks.release(spec_lock)
        return removed

    def prune(self) -> int:
        """Remove stored locks past ``max_age``; return how many."""
        removed = 0
        with contextlib.suppress(FileNotFoundError):
            for path in self.directory.glob("*.lock"):
                with contextlib.suppress(OSError):
                    if time.time() - path.stat().st_mtime > self.max_age:
                        path.unlink()
                        # Its trust record (provenance) means nothing without it.
                        self.layout.lock_record(path.stem).unlink(missing_ok=True)
                        removed += 1
        return removed


def lock_packages_digest(lock_text: str) -> str:
    """A digest of the packages a lock installs: the one input of the store id read from the lock.

    The root project's own entry is left out: it differs between specs that
    resolve to the same packages, and it installs nothing (the project is not
    a package). This parses the lock (35 ms for a 200 KB one), so it runs
    when a lock is resolved or checked, and its result is recorded beside the
    stored lock (see ``_store.provenance``) for the warm path.
    """
    document = tomllib.loads(lock_text)
    packages = [
        package
        for package in document.get("package", [])
        if not (isinstance(package.get("source"), dict) and package["source"].get("virtual") == ".")
    ]
    encoded = json.dumps(packages, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(encoded).hexdigest()
