"""Which distributions differ between two venvs' site-packages, by the names they install.

A venv built as another one plus a dependency change differs from it only in
the distributions the change added, removed or moved to another version; what
holds of the other venv for every module name outside those (the Ray check of
:mod:`.raylink`) holds of the new one too.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path


def touched_names(old_site: Path, new_site: Path) -> set[str] | None:
    """Top-level names of the distributions that differ between two site-packages.

    A distribution differs when it is in one only or its ``RECORD`` differs;
    its names are the first parts of the paths its ``RECORD`` lists (both
    sides' for a changed one). None when the two cannot be compared this way:
    a ``.pth`` file differs (it runs at every start), a differing distribution
    has no ``RECORD`` (nothing says what it installs), or a folder is unreadable.
    """
    try:
        old, new = _distributions(old_site), _distributions(new_site)
        if _pth_files(old_site) != _pth_files(new_site):
            return None
    except OSError:
        return None
    names: set[str] = set()
    for dist in old.keys() | new.keys():
        if old.get(dist) is not None and old.get(dist) == new.get(dist):
            continue
        sides = [side[dist] for side in (old, new) if dist in side]
        if any(rows is None for rows in sides):
            return None
        for rows in sides:
            for path, _ in rows or ():
                parts = path.split("/")
                top = parts[1] if parts[0] == "__pycache__" and len(parts) > 1 else parts[0]
                if top.endswith(".pth"):
                    return None
                if top == "" or top.endswith((".dist-info", ".data")):
                    continue  # metadata: never imported
                names.add(top.split(".", 1)[0])
    return names


#: A ``RECORD`` row inside site-packages: its path and its hash.
_Row = tuple[str, str]


def _distributions(site: Path) -> dict[str, frozenset[_Row] | None]:
    """Each ``*.dist-info`` folder's name and the site-packages rows of its ``RECORD``.

    Rows outside site-packages (``../../../bin/...``) are left out: a script's
    first line names the venv's own interpreter, so its hash differs in every
    venv, and no import reads it. None: the folder has no ``RECORD``.
    """
    result: dict[str, frozenset[_Row] | None] = {}
    with os.scandir(site) as entries:
        for entry in entries:
            if not entry.name.endswith(".dist-info"):
                continue
            try:
                text = (Path(entry.path) / "RECORD").read_text(errors="replace")
            except FileNotFoundError:
                result[entry.name] = None
                continue
            result[entry.name] = frozenset(
                (row[0], row[1] if len(row) > 1 else "")
                for row in csv.reader(text.splitlines())
                if row and not row[0].startswith(("../", "/"))
            )
    return result


def _pth_files(site: Path) -> dict[str, str]:
    return {
        p.name: p.read_text(errors="replace") for p in site.iterdir() if p.name.endswith(".pth")
    }
