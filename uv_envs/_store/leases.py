"""Leases: one locked file per run that uses an env, so delete and cleanup leave it alone.

A lease is a fresh file ``leases/<key hash>/<generation>-<uuid>.lease`` held
locked by the leasing process. The operating system drops the lock with the
process, so a lease file whose lock is free belongs to a dead run and is
removed when next seen.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import attrs

from uv_envs._locks import locks
from uv_envs._models import EnvKey
from uv_envs._store.layout import Layout


@attrs.frozen
class Leases:
    """The lease files of the envs under one :class:`Layout`."""

    layout: Layout

    @contextlib.contextmanager
    def hold(self, key: EnvKey, generation: int) -> Iterator[None]:
        """Hold a lease file locked until the block ends (or the process does).

        The caller takes it while holding the env lock, so no delete or cleanup
        can look at the leases in between.
        """
        directory = self.layout.lease_dir(key)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{generation}-{uuid.uuid4().hex}.lease"
        locks.try_acquire(path)  # a fresh name is always free
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
            locks.release(path)
            locks.forget(path)

    def live(self, key: EnvKey) -> list[int]:
        """Generations pinned by live leases; removes leases of dead processes."""
        pinned: list[int] = []
        with contextlib.suppress(FileNotFoundError):
            for path in self.layout.lease_dir(key).glob("*.lease"):
                if locks.is_free(path):
                    path.unlink(missing_ok=True)
                    locks.forget(path)
                    continue
                with contextlib.suppress(ValueError):
                    pinned.append(int(path.name.split("-", 1)[0]))
        return pinned
