"""The env digest: one content digest of an installed venv, the same wherever it is installed.

The digest is ``sha256:<hex>`` over a canonical JSON document of

- every file the installed distributions' ``RECORD`` files list with a hash,
  as ``(path relative to the venv, "sha256=<urlsafe base64>")`` pairs, sorted
  (so the order of ``RECORD`` rows and of distributions does not matter; a path
  listed twice stays twice);
- the ``pyvenv.cfg`` keys that change what runs: ``implementation``,
  ``version_info`` (the interpreter's version) and
  ``include-system-site-packages``.

Left out, on purpose, so that one lock on one platform and Python gives one
digest on every node and root:

- files outside ``site-packages`` (``RECORD`` rows starting ``../``: console
  scripts in ``bin/``), whose shebangs name the venv's absolute path;
- ``pyvenv.cfg``'s ``home`` (where the interpreter lives), ``uv`` (the tool's
  version), ``prompt`` and any other key;
- bytecode: ``.pyc`` files are not hashed in ``RECORD`` (and the shared
  bytecode store, ``uv_envs._bytecode``, is filled after the install).

A platform that installs other wheels lists other files and hashes, so it gets
another digest. At install the digest is computed from ``RECORD`` alone (no
installed file is read) and kept beside a store entry's venv (:data:`DIGEST`),
so every env linking the entry shares it; ``verify`` computes it again from the
bytes on disk (:func:`uv_envs._store.damage.check_generation`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path

#: Beside a store entry's ``.venv``: the digest computed when the entry was built.
DIGEST = "digest"

#: The ``pyvenv.cfg`` keys in the digest (the others name paths or tools, not content).
CONFIG_KEYS = ("implementation", "include-system-site-packages", "version_info")


def env_digest(files: Iterable[tuple[str, str]], config: Mapping[str, str]) -> str:
    """``sha256:<hex>`` of ``files`` (path, hash) in any order and ``config``; pure."""
    document = {
        "config": {key: config.get(key, "") for key in CONFIG_KEYS},
        "files": sorted([path, digest] for path, digest in files),
    }
    encoded = json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode()
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def venv_config(venv: Path) -> dict[str, str]:
    """The digest's keys of ``venv/pyvenv.cfg`` (missing ones are empty)."""
    found: dict[str, str] = {}
    try:
        text = (venv / "pyvenv.cfg").read_text()
    except OSError:
        return found
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in CONFIG_KEYS:
            found[key.strip()] = value.strip()
    return found


def site_packages(venv: Path) -> Path | None:
    """``venv/lib/pythonX.Y/site-packages``, or ``None`` if the venv has none."""
    sites = sorted(venv.glob("lib/python*/site-packages"))
    return sites[0] if sites else None


def record_rows(record: Path) -> list[tuple[str, str]]:
    """``(path relative to site-packages, "sha256=...")`` of one ``RECORD``'s hashed rows.

    A ``RECORD`` with no quote in it is split on commas, which is what the csv
    reader gives such text (no field can be quoted), at a fraction of its cost.
    """
    with record.open(newline="") as handle:
        text = handle.read()
    if '"' in text:
        rows: Iterable[list[str]] = csv.reader(io.StringIO(text, newline=""))
    else:
        rows = (line.split(",") for line in text.splitlines())
    return [
        (row[0], row[1])
        for row in rows
        if len(row) >= 2 and row[1].startswith("sha256=")  # noqa: PLR2004 - path, hash[, size]
    ]


def in_venv(site_prefix: str, row_path: str) -> str | None:
    """A ``RECORD`` path as the digest names it (relative to the venv); ``None`` if left out.

    ``site_prefix`` is site-packages relative to the venv (``lib/python3.12/site-packages``).
    Plain string work: a venv lists thousands of files and pathlib would cost most of the time.
    """
    # normpath leaves a path alone that has no empty, "." or ".." part and does not start
    # with "/": most rows; the others (and any name starting with ".") go through it.
    plain = not row_path.startswith((".", "/")) and "/." not in row_path and "//" not in row_path
    normal = row_path if plain and not row_path.endswith("/") else posixpath.normpath(row_path)
    if normal.startswith(("..", "/")):
        return None  # outside site-packages: bin/ scripts name the venv's path
    return f"{site_prefix}/{normal}"


#: The last venv's ``RECORD`` rows, by what its ``RECORD`` files were: an install reads them
#: for the digest and at once again for the manifest (:mod:`uv_envs._store.manifest`).
_last_read: list[tuple[object, list[tuple[str, str]]]] = []


def recorded_files(venv: Path) -> list[tuple[str, str]]:
    """(path in the venv, hash) of every file the ``RECORD`` files list under site-packages."""
    site = site_packages(venv)
    files: list[tuple[str, str]] = []
    if site is None:
        return files
    records = sorted(site.glob("*.dist-info/RECORD"))
    try:
        stamps = [(str(r), (i := r.stat()).st_ino, i.st_mtime_ns, i.st_size) for r in records]
    except OSError:
        stamps = []
    seen = (str(venv), stamps)
    for key, found in _last_read:
        if stamps and key == seen:
            return list(found)  # the same RECORD files, unchanged since they were read
    prefix = site.relative_to(venv).as_posix()
    for record in records:
        for row_path, digest in record_rows(record):
            path = in_venv(prefix, row_path)
            if path is not None:
                files.append((path, digest))
    _last_read[:] = [(seen, files)]
    return list(files)


def recorded_digest(venv: Path) -> str:
    """The digest of ``venv`` from its ``RECORD`` files: no installed file is read."""
    return env_digest(recorded_files(venv), venv_config(venv))


def write_digest(venv: Path) -> str:
    """Compute ``venv``'s digest and keep it beside the venv (a store entry being built)."""
    digest = recorded_digest(venv)
    (venv.parent / DIGEST).write_text(digest)
    return digest


def installed_digest(venv: Path) -> str:
    """``venv``'s digest: kept by its store entry if it has one, else from ``RECORD``."""
    try:
        return (venv.resolve().parent / DIGEST).read_text().strip()
    except OSError:
        return recorded_digest(venv)
