"""Repairs of a root's store damage: found once per shared venv, rebuilt for every env linking it.

Envs whose lock and interpreter agree link one venv in ``store/<id>`` (see
:mod:`uv_envs._store.venvs`). A file lost from that venv breaks every one of
them, so damage is judged per entry, not per env (what a damaged entry looks
like on disk, and how reads derive DAMAGED from it, is
:mod:`uv_envs._store.damage`'s). :class:`Repairs` serves ``verify_all``,
``repair`` and sync's repair of the other users of a shared venv:

* it checks each entry once (and each private venv) through
  :class:`.verify.Verifier`, the same steps ``verify`` takes, and records
  DAMAGED on each env whose lock is free;
* it rebuilds: every env whose current generation links a damaged entry gets
  a new generation. The first such rebuild builds the replacement entry
  ``<id>.1`` beside the damaged one (the live one is never edited: processes
  may run from it), under the store lock; the others link the same
  replacement, so it is built once. The damaged entry is pruned by
  ``cleanup`` once nothing links it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from uv_envs._errors import (
    EnvironmentBusy,
    EnvironmentNotFound,
    EnvironmentUnreadable,
    UvEnvsError,
)
from uv_envs._models import Environment, EnvKey, EnvStatus
from uv_envs._store.damage import VenvCheck, is_damaged, store_damage
from uv_envs._store.layout import Layout
from uv_envs._store.metadata import UnreadableRecord
from uv_envs._store.venvs import REFS, linked_entry

from .access import EnvAccess
from .generations import GenerationPlan, GenerationSwitch
from .services import Services
from .verify import Verifier, digest_problems

# Statuses whose venv is worth checking (CREATING is being built, FAILED has none).
_CHECKED = frozenset({EnvStatus.READY, EnvStatus.DAMAGED})


@attrs.frozen
class RepairReport:
    """What a whole-root check (``verify_all``) or a ``repair`` found and did.

    ``problems`` and ``unreadable`` are keyed by ``str(key)``. ``problems`` is
    what was wrong before any repair; ``repaired`` lists the envs that got a
    new, healthy generation; ``failed`` those whose rebuild failed (uv's
    message). ``unreadable`` envs are quarantined, never touched: delete them.
    """

    checked: tuple[EnvKey, ...] = ()
    problems: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    unreadable: Mapping[str, str] = attrs.field(factory=dict)
    damaged_entries: tuple[str, ...] = ()
    repaired: tuple[EnvKey, ...] = ()
    failed: Mapping[str, str] = attrs.field(factory=dict)
    checked_files: int = 0

    @property
    def ok(self) -> bool:
        """Nothing is left broken: no unreadable env, no failed or pending repair."""
        fixed = {str(key) for key in self.repaired}
        return not self.unreadable and not self.failed and set(self.problems) <= fixed


def referrers(layout: Layout, entry: Path) -> list[EnvKey]:
    """Keys of the envs whose current generation links ``entry``, from ``entry/refs``."""
    keys: set[EnvKey] = set()
    with contextlib.suppress(FileNotFoundError):
        for ref in (entry / REFS).iterdir():
            with contextlib.suppress(OSError, ValueError):
                gen_dir = Path(ref.read_text())
                if linked_entry(layout.store_dir, gen_dir) != entry:
                    continue  # a stale reference: that generation moved on
                env_dir = gen_dir.parent.parent
                if (env_dir / os.readlink(env_dir / "current")) == gen_dir:
                    keys.add(layout.key_for(env_dir))
    return sorted(keys)


@attrs.frozen
class Repairs:
    """Whole-root checks and repairs of one root, each shared venv checked once."""

    services: Services
    access: EnvAccess
    switch: GenerationSwitch
    verifier: Verifier

    def verify_all(self) -> RepairReport:
        """Check every env's venv; mark damaged entries and envs. Repairs nothing."""
        return self._check(sorted(self.services.metadata.keys()))

    def repair(self, key: EnvKey | None) -> RepairReport:
        """Check ``key`` (or every env); rebuild each damaged env and every env sharing an entry."""
        if key is not None and self.services.metadata.read(key) is None:
            raise EnvironmentNotFound(f"no environment {key}")
        keys = [key] if key is not None else sorted(self.services.metadata.keys())
        return self._repair(keys)

    def check_entry_of(self, key: EnvKey) -> None:
        """Before ``key`` is synced: find damage in the shared venv it shares with others.

        A damaged entry is marked, with the other user checked, so the sync
        builds its replacement once and :meth:`repair_users_of` moves every
        user onto it. An entry nobody else links is left to the sync alone.
        """
        environment = self.services.metadata.read(key)
        if not isinstance(environment, Environment):
            return
        layout = self.services.layout
        entry = linked_entry(layout.store_dir, self.services.dirs.current_dir(environment))
        if entry is None or is_damaged(entry):
            return
        others = [other for other in referrers(layout, entry) if other != key]
        if others:
            self._check(others[:1])

    def repair_users_of(self, entry: Path, *, exclude: EnvKey) -> RepairReport:
        """After ``exclude`` left a damaged entry: move every other env off it too."""
        users = [key for key in referrers(self.services.layout, entry) if key != exclude]
        if not users:
            return RepairReport()
        return self._repair(users[:1]) if not is_damaged(entry) else self._rebuild_all(users)

    def _check(self, keys: Iterable[EnvKey]) -> RepairReport:
        """Check the venvs of ``keys``; mark damaged entries and envs. Repairs nothing."""
        checked: list[EnvKey] = []
        problems: dict[str, tuple[str, ...]] = {}
        unreadable: dict[str, str] = {}
        by_entry: dict[Path, VenvCheck] = {}
        damaged_entries: set[Path] = set()
        files = 0
        for key in keys:
            found = self.services.metadata.read(key)
            if isinstance(found, UnreadableRecord):
                unreadable[str(key)] = found.reason
                continue
            if found is None or found.status not in _CHECKED:
                continue
            checked.append(key)
            gen_dir = self.services.dirs.current_dir(found)
            entry = linked_entry(self.services.layout.store_dir, gen_dir)
            result, new_files = self._check_venv(gen_dir, entry, by_entry)
            files += new_files
            found_problems = result.problems + digest_problems(found.digest, result.digest)
            if found_problems:
                prefix = "" if entry is None else f"shared venv store/{entry.name}: "
                problems[str(key)] = tuple(prefix + p for p in found_problems)
                if entry is not None:
                    damaged_entries.add(entry)
                self._record_if_free(key, problems[str(key)])
        return RepairReport(
            checked=tuple(checked),
            problems=problems,
            unreadable=unreadable,
            damaged_entries=tuple(sorted(e.name for e in damaged_entries)),
            checked_files=files,
        )

    def _check_venv(
        self, gen_dir: Path, entry: Path | None, by_entry: dict[Path, VenvCheck]
    ) -> tuple[VenvCheck, int]:
        """Check a generation's venv; a shared entry only the first time it is seen."""
        if entry is None:
            result = self.verifier.inspect(gen_dir)
            return result, result.checked_files
        files = 0
        if entry not in by_entry:
            by_entry[entry] = self.verifier.inspect(gen_dir)
            files = by_entry[entry].checked_files
        result = by_entry[entry]
        if not result.problems and is_damaged(entry):
            result = VenvCheck(("marked damaged by an earlier check",), 0, ())
        return result, files

    def _record_if_free(self, key: EnvKey, problems: tuple[str, ...]) -> None:
        """Record DAMAGED on one env if its lock is free now (reads derive it meanwhile)."""
        busy = contextlib.suppress(EnvironmentBusy, EnvironmentUnreadable)
        with busy, self.access.locked(key, timeout=0) as token:
            self.verifier.record_damaged(token, problems)

    def _repair(self, keys: Iterable[EnvKey]) -> RepairReport:
        """Check ``keys``, then rebuild each damaged env and every env sharing its damaged entry."""
        report = self._check(keys)
        by_name = {str(key): key for key in report.checked}
        todo = {by_name[name] for name in report.problems}
        for name in report.damaged_entries:
            todo.update(referrers(self.services.layout, self.services.venv_store.entry(name)))
        repaired: list[EnvKey] = []
        failed: dict[str, str] = {}
        problems = dict(report.problems)
        for key in sorted(todo):
            found = self.services.metadata.read(key)
            if not isinstance(found, Environment):
                continue
            damage = store_damage(self.services.layout, found)
            problems.setdefault(str(key), (damage or "damaged",))
            self._try_rebuild(key, repaired, failed)
        return attrs.evolve(report, problems=problems, repaired=tuple(repaired), failed=failed)

    def _rebuild_all(self, keys: list[EnvKey]) -> RepairReport:
        repaired: list[EnvKey] = []
        failed: dict[str, str] = {}
        for key in keys:
            self._try_rebuild(key, repaired, failed)
        return RepairReport(repaired=tuple(repaired), failed=failed)

    def _try_rebuild(self, key: EnvKey, repaired: list[EnvKey], failed: dict[str, str]) -> None:
        """Rebuild one env; one that fails is reported and the others go on."""
        try:
            self._rebuild(key)
        except UvEnvsError as exc:
            failed[str(key)] = f"{type(exc).__name__}: {exc}"
        else:
            repaired.append(key)

    def _rebuild(self, key: EnvKey) -> None:
        """A new generation for one env, linked to a healthy (or freshly rebuilt) store venv."""
        with self.access.locked(key) as token:
            environment = self.access.require(token)
            plan = GenerationPlan("repair", spec=environment.spec, shared=True, refresh=True)
            self.switch.next(token, environment, plan, lambda _gen_dir, _operation: None)
