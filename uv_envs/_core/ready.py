"""Whether an env is READY with a spec, read without its lock: the fast path of ensure.

Many callers wanting one env (N tasks on a node) wait out one install and are
handed the env together under the shared side of its lock (see
``Provisioner.provide``).
"""

from __future__ import annotations

import os

import attrs

from uv_envs._errors import UvEnvsError
from uv_envs._models import Environment, EnvKey, EnvStatus
from uv_envs._store.damage import effective

from .services import Services


@attrs.define
class ReadyWatch:
    """Whether the env of ``key`` is READY with the spec ``digest``, read without its lock.

    READY means as a locked read would find it with nothing to repair: its
    record READY with this spec, no generation in progress, ``current``
    pointing at its generation, its shared venv not marked damaged; anything
    else is left to the locked path. Every record write is an atomic rename
    and READY is written last, once the env is whole, so the answer is never
    of a half-built env; it is handed out only under the lock's shared side,
    read again there (:meth:`Provisioner.provide`). Asked once at
    construction, then (as the lock's ``unless``) each time a holder of the
    lock lets go: the record is read again only when its file was replaced.
    """

    services: Services
    key: EnvKey
    digest: str
    found: Environment | None = attrs.field(default=None, init=False)
    _path: str = attrs.field(default="", init=False)
    _seen: tuple[int, int, int] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        layout = self.services.layout
        self._path = str(layout.metadata_file(layout.env_dir(self.key)))
        self()

    def __call__(self) -> bool:
        """Whether it is READY now (then ``found`` is its record)."""
        if self.found is not None:
            return True
        try:
            stat = os.stat(self._path)  # noqa: PTH116 - a str path: no Path object per poll
        except OSError:
            return False
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._seen:
            self._seen = seen
            self.found = self.read()
        return self.found is not None

    def read(self) -> Environment | None:
        """The record if it is READY with the spec now, read afresh; else None."""
        services = self.services
        try:
            environment = services.metadata.load(self.key)
        except UvEnvsError:
            return None  # unreadable: the locked path reports it
        if (
            environment is None
            or environment.status is not EnvStatus.READY
            or environment.pending_generation is not None
            or environment.spec_hash != self.digest
        ):
            return None
        if not services.dirs.points_at(environment.env_path, environment.generation):
            return None  # left by a dead switch: the locked path re-points it
        if effective(services.layout, environment).status is not EnvStatus.READY:
            return None  # DAMAGED: the locked path rebuilds it
        return environment
