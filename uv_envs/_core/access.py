"""Access to one env under its lock, and the token that proves the lock is held.

Code that may only run under an env's lock takes a :class:`Locked` token;
:class:`EnvAccess` is the only place that makes one (:meth:`EnvAccess.locked`
waits for the lock, :meth:`EnvAccess.locked_if_free` does not). Taking the lock
does not touch the env; :meth:`EnvAccess.require` first repairs what a dead
process left in it (through its :class:`Reconciler`: :class:`.recovery.EnvRecovery`,
which writes what it repaired to the audit log), then checks its status.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator
from typing import Protocol

import attrs

from uv_envs._errors import EnvironmentNotFound, EnvironmentNotReady, StorageError
from uv_envs._events.tracking import env_scope, operation_scope
from uv_envs._locks import locks
from uv_envs._models import Environment, EnvKey, EnvStatus
from uv_envs._store.damage import effective

from .services import Services

#: States an operation may build a new generation from (rebuilding repairs DAMAGED).
USABLE = frozenset({EnvStatus.READY, EnvStatus.DAMAGED})
READY = frozenset({EnvStatus.READY})


@attrs.frozen
class Locked:
    """Proof that this thread holds the lock of ``key``."""

    key: EnvKey


class Reconciler(Protocol):
    """Repairs what a dead process left in one env, under its lock."""

    def reconcile(self, token: Locked) -> Environment | None:
        """The env's record after the repair (``None``: there is no env)."""
        ...


def require_status(environment: Environment, allowed: Collection[EnvStatus]) -> Environment:
    """``environment`` if its status is one of ``allowed``; else :class:`EnvironmentNotReady`."""
    if environment.status not in allowed:
        raise EnvironmentNotReady(
            f"environment {environment.key} is {environment.status.value}"
            + (f": {environment.error}" if environment.error else "")
        )
    return environment


@attrs.define
class EnvAccess:
    """Locks envs and hands out their repaired records."""

    services: Services
    reconciler: Reconciler
    _root_ready: bool = attrs.field(default=False, init=False)
    _root_lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def ensure_root(self) -> None:
        """Create the root's top folders once per manager."""
        if self._root_ready:
            return
        with self._root_lock:
            layout = self.services.layout
            try:
                # Owner only: the root holds the audit trail and the envs' locks. An
                # existing root keeps its mode (an operator sharing one sets it).
                layout.root.mkdir(mode=0o700, parents=True, exist_ok=True)
                for directory in (layout.envs_dir, layout.locks_dir, layout.trash_dir):
                    directory.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                # The root is the user's setting: say which, and what is wrong with it.
                raise StorageError(
                    f"cannot keep environments in {layout.root}: {exc.strerror or exc} "
                    f"({exc.filename}); set root (UV_ENVS_ROOT) to a directory this user "
                    "can write",
                    fields=("root",),
                ) from exc
            self._root_ready = True

    @contextlib.contextmanager
    def locked(self, key: EnvKey, *, timeout: float | None = None) -> Iterator[Locked]:
        """Hold the env's lock; :class:`~uv_envs.EnvironmentBusy` after ``timeout`` s."""
        with self._hold(key, timeout, None) as token:
            assert token is not None  # noqa: S101 - without unless, hold always holds
            yield token

    @contextlib.contextmanager
    def locked_unless(self, key: EnvKey, moot: Callable[[], bool]) -> Iterator[Locked | None]:
        """As :meth:`locked`, but stop waiting once ``moot()`` says so, yielding ``None``.

        ``moot`` is asked each time another process's hold ends while this
        waits (see ``_locks.locks``): a caller waiting out someone else's work
        on the env ends its wait once that work gave it what it came for,
        without queueing for the lock behind every other such caller.
        """
        with self._hold(key, None, moot) as token:
            yield token

    @contextlib.contextmanager
    def shared(self, key: EnvKey) -> Iterator[bool]:
        """Hold the env's lock shared with other readers (see ``_locks.locks.shared``).

        No operation that holds it (a create, a change, a delete) runs
        meanwhile; other shared holders do. Yields False, holding nothing,
        where that cannot be had: the caller takes :meth:`locked` instead.
        """
        self.ensure_root()
        with locks.shared(
            self.services.layout.lock_file(key),
            timeout=self.services.settings.lock_timeout,
            what=str(key),
        ) as held:
            yield held

    @contextlib.contextmanager
    def _hold(
        self, key: EnvKey, timeout: float | None, moot: Callable[[], bool] | None
    ) -> Iterator[Locked | None]:
        self.ensure_root()
        settings = self.services.settings
        with (
            locks.hold(
                self.services.layout.lock_file(key),
                timeout=settings.lock_timeout if timeout is None else timeout,
                what=str(key),
                unless=moot,
                # A caller waiting for what another's work gives it (moot) is a
                # reader to be: only the others go before the env's hand-outs.
                announce=moot is None,
            ) as held,
            # What happens under the lock is one operation on this env, for the stream.
            operation_scope(),
            env_scope(key),
        ):
            yield Locked(key) if held else None

    @contextlib.contextmanager
    def locked_if_free(self, key: EnvKey) -> Iterator[Locked | None]:
        """Hold the env's lock if nobody does right now; yield ``None`` otherwise."""
        self.ensure_root()
        lock = self.services.layout.lock_file(key)
        if not locks.try_acquire(lock):
            yield None
            return
        try:
            yield Locked(key)
        finally:
            locks.release(lock)

    def current(self, token: Locked) -> Environment | None:
        """The env's record after repairing what a dead process left in it."""
        return self.reconciler.reconcile(token)

    def require(self, token: Locked, allowed: Collection[EnvStatus] = USABLE) -> Environment:
        """The repaired record; :class:`EnvironmentNotFound` or ``NotReady`` otherwise."""
        environment = self.reconciler.reconcile(token)
        if environment is None:
            raise EnvironmentNotFound(f"no environment {token.key}")
        # DAMAGED when its shared venv is: what it would be if it had been verified too.
        return require_status(effective(self.services.layout, environment), allowed)

    @contextlib.contextmanager
    def leased(self, key: EnvKey) -> Iterator[Environment]:
        """The READY env of ``key``, its generation leased until the block ends.

        The env's lock is held only to check it and take the lease, not for the block.
        """
        with contextlib.ExitStack() as stack:
            with self.locked(key) as token:
                environment = self.require(token, READY)
                stack.enter_context(self.services.leases.hold(key, environment.generation))
            self.services.dirs.touch(environment)
            yield environment

    def read(self, key: EnvKey) -> Environment | None:
        """The record as stored, without waiting for the lock.

        One case takes the lock: a CREATING record whose lock is free was left
        by a creator that died, so it is rolled back now (without waiting, and
        recorded in the audit log) rather than reported as in progress.
        """
        environment = self.services.metadata.load(key)
        if environment is None or environment.status is not EnvStatus.CREATING:
            return environment
        if not locks.is_free(self.services.layout.lock_file(key)):
            return environment
        with self.locked_if_free(key) as token:
            return environment if token is None else self.current(token)
