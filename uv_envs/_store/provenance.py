"""When a stored resolution may be reused without asking uv again.

A stored lock (``lockstore/<spec hash>.lock``) used to be checked with
``uv lock --check --offline`` before every reuse: a subprocess on every
create of a known spec. Now, whenever uv has just resolved or checked a stored
lock, a record is written beside it, ``lockstore/<spec hash>.lock.json``::

    {"lock_sha256": ..., "packages": ..., "uv": ..., "index": ..., "project": ...}

``lock_sha256`` pins the exact bytes, ``packages`` is the digest of the
locked packages that the store id is derived from (so the lock is never parsed
again), and the last three say under what it was vouched for: which uv binary,
which index settings, which ``pyproject.toml``. A later create trusts the lock
only when all five match what it has now; otherwise it checks with uv as
before (and, if the check passes, records the new circumstances). So a lock
made by another uv, for other index settings, by another rendering of the
project, or changed on disk since, is never reused blindly.

uv is identified without running it: by its binary's resolved path, size and
modification time (:func:`binary_identity`). An upgrade replaces the file, so
it changes the identity; an executor that cannot say which uv it runs
(:class:`~uv_envs._uv.executor.IdentifiesUv` not implemented) never skips the check.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import attrs
import cattrs

from uv_envs._models import EnvKey, IndexSettings, converter
from uv_envs._store.layout import Layout
from uv_envs._store.metadata import write_atomic
from uv_envs._store.project import render_pyproject
from uv_envs._validation import canonical_requirement

# The project text is rendered for this key: uv ignores the key, so the digest
# covers exactly what uv reads.
_ANY_KEY = EnvKey("uv-envs", "lock")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def index_digest(index: IndexSettings) -> str:
    """A digest of the index settings uv resolved against."""
    return _digest(json.dumps(converter.unstructure(index), sort_keys=True))


def project_digest(packages: tuple[str, ...], python_request: str) -> str:
    """A digest of the ``pyproject.toml`` uv checks a lock against, for a spec.

    The key is left out (uv ignores it) and the requirements are normalized as
    the spec hash normalizes them: specs that differ only in order or name
    spelling share a stored lock, and uv's check accepts it for each of them.
    """
    normalized = tuple(sorted({canonical_requirement(p) for p in packages}))
    return _digest(render_pyproject(_ANY_KEY, normalized, python_request))


@attrs.frozen
class Provenance:
    """The circumstances a create would reuse a stored lock under."""

    uv: str | None
    index: str
    project: str


@attrs.frozen
class LockRecord:
    """What was true when uv last resolved or checked a stored lock."""

    lock_sha256: str
    packages: str
    uv: str
    index: str
    project: str

    def vouches_for(self, lock: bytes, provenance: Provenance) -> bool:
        """Whether ``lock`` may be reused under ``provenance`` without asking uv."""
        return (
            provenance.uv is not None
            and self.uv == provenance.uv
            and self.index == provenance.index
            and self.project == provenance.project
            and self.lock_sha256 == hashlib.sha256(lock).hexdigest()
        )


@attrs.define
class ResolutionRecords:
    """The records beside the stored locks, one JSON file per spec hash."""

    layout: Layout

    def path(self, digest: str) -> Path:
        return self.layout.lock_record(digest)

    def get(self, digest: str) -> LockRecord | None:
        """The record of a spec's stored lock; None if missing or unreadable."""
        try:
            data = json.loads(self.path(digest).read_bytes())
            return converter.structure(data, LockRecord)
        except (OSError, ValueError, cattrs.BaseValidationError):
            return None

    def trusted(self, digest: str, lock: bytes, provenance: Provenance) -> LockRecord | None:
        """The record, if it vouches for ``lock`` under ``provenance``."""
        record = self.get(digest)
        return record if record is not None and record.vouches_for(lock, provenance) else None

    def put(self, digest: str, lock: bytes, packages: str, provenance: Provenance) -> None:
        """Record that uv resolved or checked ``lock`` under ``provenance``.

        Written under the spec's lock, like the stored lock itself. Nothing is
        recorded for a uv that cannot be identified: it would never match.
        """
        if provenance.uv is None:
            return
        record = LockRecord(
            lock_sha256=hashlib.sha256(lock).hexdigest(),
            packages=packages,
            uv=provenance.uv,
            index=provenance.index,
            project=provenance.project,
        )
        self.layout.lockstore_dir.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(converter.unstructure(record), sort_keys=True).encode()
        write_atomic(self.path(digest), payload)
