"""Store damage: found once per shared venv, reported for, and repaired for, every env linking it.

Envs whose lock and interpreter agree link one venv in ``store/<id>`` (see
:mod:`uv_envs._root.store`). A file lost from that venv breaks every one of them,
so damage is judged per entry, not per env:

* :func:`store_damage` tells whether an env's current generation links an
  entry marked ``.damaged``. Reads apply it (:func:`effective`), so once one
  env's check finds the entry damaged, every env linking it stops saying
  READY at once, without taking their locks.
* :class:`Repairer` checks each entry once (and each private venv), marks
  what it finds, and rebuilds: every env whose current generation links a
  damaged entry gets a new generation. The first such rebuild builds the
  replacement entry ``<id>.1`` beside the damaged one (the live one is never
  edited: processes may run from it); the others link the same replacement,
  so it is built once. The damaged entry is pruned by ``cleanup`` once nothing
  links it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import attrs

from uv_envs._errors import UvEnvsError
from uv_envs._models import Environment, EnvKey, EnvStatus
from uv_envs._root.damage import check_venv
from uv_envs._root.envdirs import current_dir
from uv_envs._root.layout import Layout
from uv_envs._root.metadata import UnreadableRecord
from uv_envs._root.project import read_locked
from uv_envs._root.store import VenvStore

_DAMAGED = ".damaged"
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


def linked_entry(store_dir: Path, gen_dir: Path) -> Path | None:
    """The store entry ``gen_dir/.venv`` links, or ``None`` for a private venv."""
    try:
        target = Path(os.readlink(gen_dir / ".venv"))
    except OSError:
        return None
    if target.name == ".venv" and target.parent.parent == store_dir:
        return target.parent
    return None


def is_damaged(entry: Path) -> bool:
    return (entry / _DAMAGED).exists()


def damaged_entry(layout: Layout, environment: Environment) -> Path | None:
    """The store entry the env's current generation links, if a check marked it damaged."""
    entry = linked_entry(layout.store_dir, current_dir(environment))
    return entry if entry is not None and is_damaged(entry) else None


def store_damage(layout: Layout, environment: Environment) -> str | None:
    """Why the env is damaged through its shared venv, or ``None``: a few syscalls, no lock."""
    entry = damaged_entry(layout, environment)
    if entry is None:
        return None
    return (
        f"its shared venv store/{entry.name} is damaged (found by a check of an env "
        "linking it); run `uv-envs repair` to rebuild it for every env that links it"
    )


def effective(layout: Layout, environment: Environment) -> Environment:
    """The env as reads report it: READY turns DAMAGED when its shared venv is damaged."""
    if environment.status is not EnvStatus.READY:
        return environment
    note = store_damage(layout, environment)
    if note is None:
        return environment
    return attrs.evolve(environment, status=EnvStatus.DAMAGED, error=note)


def referrers(layout: Layout, entry: Path) -> list[EnvKey]:
    """Keys of the envs whose current generation links ``entry``, from ``entry/refs``."""
    keys: set[EnvKey] = set()
    with contextlib.suppress(FileNotFoundError):
        for ref in (entry / "refs").iterdir():
            with contextlib.suppress(OSError, ValueError):
                gen_dir = Path(ref.read_text())
                if Path(os.readlink(gen_dir / ".venv")) != entry / ".venv":
                    continue  # a stale reference: that generation moved on
                env_dir = gen_dir.parent.parent
                if (env_dir / os.readlink(env_dir / "current")) == gen_dir:
                    keys.add(layout.key_for(env_dir))
    return sorted(keys)


@attrs.frozen
class VenvCheck:
    """One venv checked against its lock."""

    problems: tuple[str, ...]
    checked_files: int
    damaged_packages: tuple[str, ...]


def check_generation(gen_dir: Path) -> VenvCheck:
    """Check ``gen_dir/.venv`` (private or shared) against ``gen_dir/uv.lock``."""
    try:
        locked = read_locked(gen_dir)
    except (OSError, ValueError) as exc:
        return VenvCheck((f"uv.lock cannot be read: {exc}",), 0, ())
    problems, checked, damaged = check_venv(
        gen_dir / ".venv", gen_dir / ".venv" / "bin" / "python", locked
    )
    return VenvCheck(tuple(problems), checked, tuple(damaged))


@attrs.define
class Repairer:
    """Checks a root's venvs, each shared entry once, and rebuilds what is damaged.

    The manager hands in the steps that need its locks and uv:

    Args:
        layout: the root.
        venv_store: marks entries damaged.
        read: an env's record, what is wrong with it, or ``None``.
        mark: persist DAMAGED (with the problems) on one env, under its lock.
        rebuild: give one env a new generation linked to a healthy venv.
        clean_cache: drop packages from uv's cache (their files were damaged:
            installed files are hard links into it).

    """

    layout: Layout
    venv_store: VenvStore
    read: Callable[[EnvKey], Environment | UnreadableRecord | None]
    mark: Callable[[EnvKey, tuple[str, ...]], None]
    rebuild: Callable[[EnvKey], None]
    clean_cache: Callable[[Iterable[str]], None]

    def check(self, keys: Iterable[EnvKey]) -> RepairReport:
        """Check the venvs of ``keys``; mark damaged entries and envs. Repairs nothing."""
        checked: list[EnvKey] = []
        problems: dict[str, tuple[str, ...]] = {}
        unreadable: dict[str, str] = {}
        by_entry: dict[Path, VenvCheck] = {}
        damaged_entries: set[Path] = set()
        files = 0
        for key in keys:
            found = self.read(key)
            if isinstance(found, UnreadableRecord):
                unreadable[str(key)] = found.reason
                continue
            if found is None or found.status not in _CHECKED:
                continue
            checked.append(key)
            gen_dir = current_dir(found)
            entry = linked_entry(self.layout.store_dir, gen_dir)
            first_look = entry is None or entry not in by_entry
            result, new_files = self._check_venv(gen_dir, entry, by_entry)
            files += new_files
            prefix = "" if entry is None else f"shared venv store/{entry.name}: "
            if entry is not None and result.problems:
                damaged_entries.add(entry)
            if result.problems:
                problems[str(key)] = tuple(prefix + p for p in result.problems)
                if result.damaged_packages and first_look:
                    self.clean_cache(result.damaged_packages)
                if entry is not None:
                    with contextlib.suppress(OSError):
                        self.venv_store.mark_damaged(entry / ".venv")
                self.mark(key, problems[str(key)])
        return RepairReport(
            checked=tuple(checked),
            problems=problems,
            unreadable=unreadable,
            damaged_entries=tuple(sorted(e.name for e in damaged_entries)),
            checked_files=files,
        )

    @staticmethod
    def _check_venv(
        gen_dir: Path, entry: Path | None, by_entry: dict[Path, VenvCheck]
    ) -> tuple[VenvCheck, int]:
        """Check a generation's venv; a shared entry only the first time it is seen."""
        if entry is None:
            result = check_generation(gen_dir)
            return result, result.checked_files
        files = 0
        if entry not in by_entry:
            by_entry[entry] = check_generation(gen_dir)
            files = by_entry[entry].checked_files
        result = by_entry[entry]
        if not result.problems and is_damaged(entry):
            result = VenvCheck(("marked damaged by an earlier check",), 0, ())
        return result, files

    def repair(self, keys: Iterable[EnvKey]) -> RepairReport:
        """Check ``keys``, then rebuild each damaged env and every env sharing its damaged entry."""
        report = self.check(keys)
        by_name = {str(key): key for key in report.checked}
        todo = {by_name[name] for name in report.problems}
        for name in report.damaged_entries:
            todo.update(referrers(self.layout, self.venv_store.entry(name)))
        repaired: list[EnvKey] = []
        failed: dict[str, str] = {}
        problems = dict(report.problems)
        for key in sorted(todo):
            found = self.read(key)
            if not isinstance(found, Environment):
                continue
            problems.setdefault(str(key), (store_damage(self.layout, found) or "damaged",))
            try:
                self.rebuild(key)
            except UvEnvsError as exc:
                failed[str(key)] = f"{type(exc).__name__}: {exc}"
            else:
                repaired.append(key)
        return attrs.evolve(report, problems=problems, repaired=tuple(repaired), failed=failed)

    def check_entry_of(self, environment: Environment) -> None:
        """Check the shared venv ``environment`` links if other envs link it too (before a sync).

        A damaged entry is marked, with the other user checked, so the sync
        builds its replacement once and :meth:`repair_users_of` moves every
        user onto it. An entry nobody else links is left to the sync alone.
        """
        entry = linked_entry(self.layout.store_dir, current_dir(environment))
        if entry is None or is_damaged(entry):
            return
        others = [key for key in referrers(self.layout, entry) if key != environment.key]
        if others:
            self.check(others[:1])

    def repair_users_of(self, entry: Path, *, exclude: EnvKey | None = None) -> RepairReport:
        """Rebuild every other env linking ``entry`` if the entry is damaged (after a sync)."""
        users = [key for key in referrers(self.layout, entry) if key != exclude]
        if not users:
            return RepairReport()
        return self.repair(users[:1]) if not is_damaged(entry) else self._rebuild_all(users)

    def _rebuild_all(self, keys: list[EnvKey]) -> RepairReport:
        repaired: list[EnvKey] = []
        failed: dict[str, str] = {}
        for key in keys:
            try:
                self.rebuild(key)
            except UvEnvsError as exc:
                failed[str(key)] = f"{type(exc).__name__}: {exc}"
            else:
                repaired.append(key)
        return RepairReport(repaired=tuple(repaired), failed=failed)
