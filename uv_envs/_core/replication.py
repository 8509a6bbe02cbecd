"""Each change of an env made here, then on its replicas, one change of a key at a time.

A root whose envs are also installed elsewhere (:func:`uv_envs.ray.ClusterEnvManager`:
every node of a Ray cluster holds each env under the same path) is given a
:class:`Replication`. The facade runs each change, delete and cleanup through
:class:`Replicated`, which does nothing more without one.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

import attrs

from uv_envs._models import DeleteStatus, Environment, EnvKey
from uv_envs._reports import CleanupReport, DeleteResult, Export

from .reads import Reads
from .requests import Asked

#: Locks per key stripe, not per key: a fixed set, whatever the number of envs.
_STRIPES = 64


class Replication(Protocol):
    """Where every env of the root is also installed (``EnvManager(replication=...)``)."""

    def check_python(self, request: str) -> None:
        """Raise if the replicas cannot run this Python request, before anything is built."""
        ...

    def changed(self, environment: Environment, project: Export) -> None:
        """The env was made or changed here: make every replica hold ``project``."""
        ...

    def deleted(self, key: EnvKey, env_path: Path) -> tuple[str, ...]:
        """The env at ``env_path`` was deleted here: release it on every replica.

        Returns the replicas that keep their copy for now (in use there).
        """
        ...

    def close(self) -> None:
        """Stop what the replication runs (``EnvManager.close`` calls it first)."""
        ...


class Replicated:
    """The facade's changes, each then replicated under its key's stripe (if replicated)."""

    def __init__(self, replication: Replication | None, reads: Reads, default_python: str) -> None:
        self.replication = replication
        self._reads = reads
        self._default_python = default_python
        self._stripes = tuple(threading.RLock() for _ in range(_STRIPES))

    @contextmanager
    def serialized(self, key: EnvKey) -> Iterator[None]:
        """One change (or delete) of ``key`` and its replication at a time in this process."""
        with self._stripes[zlib.crc32(str(key).encode()) % _STRIPES]:
            yield

    @contextmanager
    def change(self, key: EnvKey, asked: Asked | None = None) -> Iterator[None]:
        """The block changes the env of ``key``; then every replica is made to hold it.

        ``asked`` (a create, ensure or provision) is refused first if the
        replicas cannot run its Python. A block that raises is not replicated.
        """
        if self.replication is None:
            yield
            return
        if asked is not None:
            self.replication.check_python(asked.python or self._default_python)
        with self.serialized(key):
            yield
            self.replication.changed(self._reads.get(key), self._reads.project(key))

    def delete(self, key: EnvKey, run: Callable[[], DeleteResult]) -> DeleteResult:
        """``run`` deletes the env of ``key`` here; then every replica releases it.

        Replicas that keep their copy for now (in use there) are named in the
        result's ``held_on``; a delete done here is then ``DEFERRED`` there.
        """
        if self.replication is None:
            return run()
        with self.serialized(key):
            env_path = self._reads.status(key).env_path
            result = run()
            held_on = self.replication.deleted(key, env_path)
        if not held_on:
            return result
        status = result.status
        if status is DeleteStatus.DELETED:
            status = DeleteStatus.DEFERRED
        return attrs.evolve(result, status=status, held_on=tuple(held_on))

    def cleaned(self, report: CleanupReport) -> None:
        """Release on every replica each env the cleanup deleted and nothing made again since."""
        if self.replication is None:
            return
        for key in report.deleted:
            with self.serialized(key):
                status = self._reads.status(key)
                if status.environment is None:
                    self.replication.deleted(key, status.env_path)

    def close(self) -> None:
        """Stop the replication, if any."""
        if self.replication is not None:
            self.replication.close()
