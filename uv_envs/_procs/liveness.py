"""Which envs, generations and store entries live processes use: one scan, many questions.

:meth:`Liveness.snapshot` scans the host once (a :class:`ProcessScanner`) and
files each use under what it names in the root's layout: an env (through its
top-level links, which follow generation switches), one of its generations
(``gens/<N>``, as ``pinned_python_path`` names it) or a store entry. Cleanup
asks once per call and delete once per env, never once per env per process.

An env is in use when a process uses its folder or a store entry one of its
generations links (a store entry may be shared; keeping every env that links
a used entry is the conservative reading of a resolved ``/proc`` path). A
retired generation is in use when a process uses its folder or its entry, or
uses the env through its top-level links and started before the generation
was retired: such a process may have started from it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import attrs

from uv_envs._models import EnvKey
from uv_envs._procs.scan import ProcessScanner, ProcessView
from uv_envs._reports import LiveProcess
from uv_envs._store.envdirs import EnvDirs
from uv_envs._store.layout import EMPTY_VERSION_DIR, Layout
from uv_envs._store.venvs import linked_entry

#: A process of an env and the generation it names (None: the top-level links).
_EnvUse = tuple[ProcessView, int | None]

#: /proc gives the boot time in whole seconds, so a start time is known to a second;
#: a process that may have started before a switch counts as having started before it.
_CLOCK_SLACK = 1.0


@attrs.frozen
class LiveUses:
    """The uses one scan found, filed by env and store entry name."""

    layout: Layout
    by_env: dict[EnvKey, list[_EnvUse]] = attrs.field(factory=dict)
    by_entry: dict[str, list[ProcessView]] = attrs.field(factory=dict)

    @classmethod
    def of(cls, layout: Layout, views: Iterable[ProcessView]) -> LiveUses:
        uses = cls(layout)
        prefixes = {str(layout.root), os.path.realpath(layout.root)}
        for view in views:
            for path, _ in view.uses:
                for prefix in prefixes:
                    if path.startswith(prefix + os.sep):
                        uses.file(view, list(Path(path[len(prefix) + 1 :]).parts))
        return uses

    def file(self, view: ProcessView, parts: list[str]) -> None:
        """File one use of ``view`` by the root-relative ``parts`` of its path."""
        if parts[0] == "envs" and len(parts) >= 4:  # noqa: PLR2004 - envs/<wf>/<node>/<version>
            version = "" if parts[3] == EMPTY_VERSION_DIR else parts[3]
            try:
                key = EnvKey(parts[1], parts[2], version)
            except ValueError:
                return  # a folder no key can name: not an env
            generation = None
            if len(parts) >= 6 and parts[4] == "gens" and parts[5].isdigit():  # noqa: PLR2004
                generation = int(parts[5])
            listed = self.by_env.setdefault(key, [])
            if (view, generation) not in listed:
                listed.append((view, generation))
        elif parts[0] == "store" and len(parts) >= 2:  # noqa: PLR2004 - store/<id>
            listed_views = self.by_entry.setdefault(parts[1], [])
            if view not in listed_views:
                listed_views.append(view)

    @property
    def entries(self) -> frozenset[str]:
        """Names of the store entries a live process uses (never pruned while it runs)."""
        return frozenset(self.by_entry)

    def env(self, key: EnvKey) -> tuple[LiveProcess, ...]:
        """The processes using the env ``key`` or a store entry one of its generations links."""
        views = [view for view, _ in self.by_env.get(key, [])]
        if self.by_entry:
            env_dir = self.layout.env_dir(key)
            for number in EnvDirs.generation_numbers(env_dir):
                views += self._entry_users(self.layout.generation_dir(env_dir, number))
        return describe(views, self.layout)

    def generation(self, key: EnvKey, number: int, retired_at: float) -> tuple[LiveProcess, ...]:
        """The processes that may run from generation ``number`` of ``key``, retired then."""
        views = [
            view
            for view, generation in self.by_env.get(key, [])
            if generation == number
            or (generation is None and view.started_at - _CLOCK_SLACK <= retired_at)
        ]
        views += self._entry_users(self.layout.generation_dir(self.layout.env_dir(key), number))
        return describe(views, self.layout)

    def _entry_users(self, gen_dir: Path) -> list[ProcessView]:
        if not self.by_entry:
            return []
        entry = linked_entry(self.layout.store_dir, gen_dir)
        return [] if entry is None else self.by_entry.get(entry.name, [])


def describe(views: Iterable[ProcessView], layout: Layout) -> tuple[LiveProcess, ...]:
    """One :class:`LiveProcess` per pid: its command, and how it uses the root."""
    seen: dict[int, LiveProcess] = {}
    for view in views:
        if view.pid in seen:
            continue
        hows = sorted({use.value for path, use in view.uses if _under(path, layout)})
        note = " (only its command line could be read)" if view.hidden else ""
        seen[view.pid] = LiveProcess(view.pid, f"{view.command}: {', '.join(hows)}{note}")
    return tuple(sorted(seen.values(), key=lambda p: p.pid))


def _under(path: str, layout: Layout) -> bool:
    """Whether ``path`` is in an env or a store entry (either spelling of the root)."""
    roots = {str(layout.root), os.path.realpath(layout.root)}
    return any(
        path.startswith(f"{root}{os.sep}{part}{os.sep}") for root in roots for part in _PARTS
    )


_PARTS = ("envs", "store")


@attrs.frozen
class Liveness:
    """Asks the system which parts of one root live processes use."""

    layout: Layout
    scanner: ProcessScanner

    def snapshot(self) -> LiveUses:
        """Scan the host once and file what it found (see the module docstring)."""
        return LiveUses.of(self.layout, self.scanner.scan(self.layout.root))
