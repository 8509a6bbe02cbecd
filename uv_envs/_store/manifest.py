"""The cheap check of an installed venv: the sizes and modification times recorded at install.

Hashing every file of a venv (``verify``, :mod:`uv_envs._store.damage`) costs
seconds for a large env; a worker's start cannot pay that each time. So when a
venv is built, the size and ``st_mtime_ns`` of every file its ``RECORD`` files
list with a hash (the files of the env digest, :mod:`uv_envs._store.digest`)
and the names at the top of its ``site-packages`` are kept beside it
(:data:`MANIFEST`, next to the digest). Checking a copy against that is one
``stat`` per file and one ``listdir``: milliseconds for the usual env.

The check finds a file that vanished (a deleted package folder whose
``dist-info`` is kept), one rewritten or truncated (its mtime or size moves), and a
package added at the top of ``site-packages`` (an operator's ``pip install``).
It cannot find bytes replaced in place with size and mtime put back: a full
check (``verify``) hashes every file. A copy without a manifest (built before
manifests, or cut short by a crash before its manifest was written, which is
the last step of a build) gets the full check, which writes one when the copy
is sound. Bytecode (``__pycache__``) is left out: Python may write it at import.

The format and the check itself live in :mod:`uv_envs._store.stamps` (stdlib
only: a Ray worker's launcher runs it with the env's own interpreter). A
``manifest.json`` of the older JSON format is never read: a copy with only
that gets the full check, which writes the compact manifest and removes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs

from uv_envs._store import stamps as stamps_format
from uv_envs._store.digest import recorded_files, site_packages

#: Beside a venv (in its store entry, or its generation): its sizes and mtimes at install.
MANIFEST = stamps_format.NAME
#: The JSON manifest of earlier releases: never read (a copy with only it gets the full check).
_OLD_MANIFEST = "manifest.json"

#: Left out of the names at the top of ``site-packages``: Python writes bytecode there at import.
_TRANSIENT = frozenset({"__pycache__"})


@attrs.frozen
class Manifest:
    """What a venv's files were at install: ``path -> (size, mtime_ns)``, and top-level names."""

    files: Mapping[str, tuple[int, int]]
    entries: frozenset[str] = frozenset()


def changes(recorded: Manifest, current: Manifest) -> list[str]:
    """What differs in ``current`` from ``recorded``, one phrase per difference; pure.

    A recorded file that is not in ``current`` is missing; one whose size or
    mtime differs has changed; a top-level name ``current`` has and ``recorded``
    lacks was added (one it lacks is missing). Files only ``current`` lists are
    not judged: ``current`` is measured over ``recorded``'s paths.
    """
    found = []
    for path, stamp in sorted(recorded.files.items()):
        now = current.files.get(path)
        if now is None:
            found.append(f"{path} is missing")
        elif now != stamp:
            found.append(f"{path} changed (size or modification time)")
    found += [
        f"{name} was added to site-packages" for name in sorted(current.entries - recorded.entries)
    ]
    found += [
        f"{name} is missing from site-packages"
        for name in sorted(recorded.entries - current.entries)
    ]
    return found


def stamps(venv: Path, paths: Iterable[str]) -> dict[str, tuple[int, int]]:
    """``(size, mtime_ns)`` of each of ``paths`` (relative to ``venv``) that exists."""
    found = {}
    base = os.fspath(venv)
    for path in paths:
        try:
            info = os.stat(os.path.join(base, path))  # noqa: PTH116, PTH118 - thousands of files: plain strings
        except OSError:
            continue
        found[path] = (info.st_size, info.st_mtime_ns)
    return found


def top_entries(venv: Path) -> frozenset[str]:
    """The names at the top of ``venv``'s site-packages, bytecode folders left out."""
    site = site_packages(venv)
    if site is None:
        return frozenset()
    try:
        return frozenset(entry.name for entry in site.iterdir()) - _TRANSIENT
    except OSError:
        return frozenset()


def measure(venv: Path) -> Manifest:
    """The manifest of ``venv`` as it is now, over the files its ``RECORD`` files list."""
    paths = [path for path, _ in recorded_files(venv)]
    return Manifest(stamps(venv, paths), top_entries(venv))


def manifest_path(venv: Path) -> Path:
    """Where ``venv``'s manifest is kept: beside the venv it resolves to (a store entry's)."""
    return Path(stamps_format.manifest_file(os.fspath(venv)))


def write_manifest(venv: Path) -> Manifest:
    """Measure ``venv`` and keep the result beside it (replacing any older one, of any format)."""
    site = site_packages(venv)
    base = os.path.realpath(venv)  # the string the check builds paths from
    site_rel = "" if site is None else site.relative_to(venv).as_posix()
    paths = [path for path, _ in recorded_files(venv)]
    text, stamped, top = stamps_format.encode(base, site_rel, paths)
    target = manifest_path(venv)
    scratch = target.with_name(f".{target.name}.{os.getpid()}")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(target)
    target.with_name(_OLD_MANIFEST).unlink(missing_ok=True)
    return Manifest({path: (size, mtime) for path, size, mtime in stamped}, frozenset(top))


def _parse(text: str) -> Manifest | None:
    head, _, tail = text.partition("\n\n")
    lines = head.split("\n")
    if len(lines) < 3 or lines[0] != stamps_format.HEADER:  # noqa: PLR2004 - header, digest, top
        return None
    _, *entries = lines[2].split("\0")
    groups = [line.split("\0") for line in lines[3:]]
    paths = [f"{parts[0]}/{name}" for parts in groups for name in parts[1:]]
    stamp_lines = tail.split("\n")
    files = {}
    for path, line in zip(paths, stamp_lines, strict=False):
        size, _, mtime = line.partition(" ")
        files[path] = (int(size), int(mtime))
    return Manifest(files, frozenset(entries))


def read_manifest(venv: Path) -> Manifest | None:
    """The manifest beside ``venv``; ``None`` if there is none, or it is unreadable or older."""
    try:
        return _parse(manifest_path(venv).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def quick_check(venv: Path) -> list[str] | None:
    """What changed in ``venv`` since its manifest was kept; ``None``: no manifest, hash it all.

    A manifest of the older JSON format (``manifest.json``, before the compact one) counts
    as none: the full check that follows writes the compact one when the copy is sound.
    """
    return stamps_format.check(os.fspath(venv))
