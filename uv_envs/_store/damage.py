"""What damage looks like on disk: a venv checked against its lock, and the ``.damaged`` mark.

A venv is checked file by file against the ``RECORD`` of each installed
distribution and against the generation's ``uv.lock``
(:func:`check_generation`, always with the generation's own interpreter,
``gens/<N>/.venv/bin/python``). A shared venv found damaged gets its store
entry marked (:func:`mark_damaged`): the store never links it again, and every
env whose current generation links it reads as DAMAGED from then on
(:func:`effective`), without anyone taking their locks. No state is kept
here besides the mark; deciding what to record and rebuild is the core's.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
from packaging.utils import canonicalize_name

from uv_envs._models import Environment, EnvStatus
from uv_envs._store.digest import env_digest, in_venv, record_rows, site_packages, venv_config
from uv_envs._store.envdirs import current_dir
from uv_envs._store.layout import Layout
from uv_envs._store.project import locked_versions, read_lock, required_packages
from uv_envs._store.venvs import DAMAGED


def is_damaged(entry: Path) -> bool:
    """Whether a check marked the store entry ``entry`` damaged."""
    return (entry / DAMAGED).exists()


def mark_damaged(entry: Path) -> None:
    """Mark the store entry ``entry`` damaged: it is never linked again (a new one is built)."""
    (entry / DAMAGED).write_text(str(time.time()))


def damaged_entry(layout: Layout, environment: Environment) -> Path | None:
    """The store entry the env's current generation links, if a check marked it damaged.

    Every read asks it (:func:`effective`), so it is spelt with ``os.path`` on
    strings: the ``readlink`` and ``stat`` of :func:`~uv_envs._store.venvs.linked_entry`
    and :func:`is_damaged`, without their pathlib parsing (a third of a status
    read's CPU); a ``Path`` is made only for an entry marked damaged.
    """
    gen_dir = os.fspath(current_dir(environment))
    try:
        target = os.readlink(f"{gen_dir}/.venv")
    except OSError:
        return None  # no link: a private venv
    entry, name = os.path.split(target)
    if name != ".venv" or not os.path.exists(f"{entry}/{DAMAGED}"):  # noqa: PTH110 - see above
        return None
    found = Path(entry)
    return found if found.parent == layout.store_dir else None


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


#: Printed by the venv's interpreter: its PEP 508 marker environment (as packaging builds it).
_MARKER_ENVIRONMENT = """
import json, os, platform, sys
v = sys.implementation.version
iv = f"{v.major}.{v.minor}.{v.micro}"
iv += "" if v.releaselevel == "final" else v.releaselevel[0] + str(v.serial)
print(json.dumps({
    "implementation_name": sys.implementation.name, "implementation_version": iv,
    "os_name": os.name, "platform_machine": platform.machine(),
    "platform_release": platform.release(), "platform_system": platform.system(),
    "platform_version": platform.version(), "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]), "sys_platform": sys.platform,
}))
"""


@attrs.frozen
class VenvCheck:
    """One venv checked against its lock: what is wrong, files hashed, packages damaged.

    ``digest`` is the env digest of the files as found on disk (empty when the
    venv could not be read at all).
    """

    problems: tuple[str, ...]
    checked_files: int
    damaged_packages: tuple[str, ...]
    digest: str = ""


def check_generation(gen_dir: Path) -> VenvCheck:
    """Check ``gen_dir/.venv`` (private or shared) against ``gen_dir/uv.lock``.

    The interpreter checked is the generation's own, so every caller judges
    the same venv with the same Python; a lock that cannot be read is a problem
    found, like a missing file.
    """
    try:
        document = read_lock(gen_dir)
    except (OSError, ValueError) as exc:
        return VenvCheck((f"uv.lock cannot be read: {exc}",), 0, ())
    venv = gen_dir / ".venv"
    problems, checked, damaged, digest = check_venv(venv, venv / "bin" / "python", document)
    return VenvCheck(tuple(problems), checked, tuple(damaged), digest)


def _marker_environment(python: Path) -> tuple[dict[str, str] | None, str | None]:
    """Start the venv's interpreter: its marker environment, or why it did not start."""
    try:
        completed = subprocess.run(
            [str(python), "-I", "-c", _MARKER_ENVIRONMENT],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)
    if completed.returncode != 0:
        return None, completed.stderr.strip()[-200:]
    try:
        environment = json.loads(completed.stdout)
    except ValueError as exc:
        return None, f"it printed no marker environment: {exc}"
    return (
        ({str(k): str(v) for k, v in environment.items()}, None)
        if isinstance(environment, dict)
        else (None, "it printed no marker environment")
    )


def check_venv(
    venv: Path, python: Path, document: Mapping[str, object]
) -> tuple[list[str], int, list[str], str]:
    """Problems found in ``venv`` (empty when healthy), files hashed, damaged packages, digest.

    Every file ``RECORD`` lists is read once, in a thread pool; the env digest
    (:mod:`uv_envs._store.digest`) is computed from the hashes of the bytes on
    disk (a missing file counts as ``missing``), so it differs from the one
    recorded at install when any file does.

    ``document`` is the lock. A locked package this platform leaves out (its
    markers say so) is not missing; where the interpreter cannot say what
    platform it is, every locked package is required.
    """
    problems: list[str] = []
    environment, trouble = _marker_environment(python)
    if trouble is not None:
        problems.append(f"the interpreter does not start: {trouble}")
    locked = locked_versions(document)
    required = set(locked) if environment is None else required_packages(document, environment)
    site = site_packages(venv)
    if site is None:
        return [*problems, "the venv has no site-packages"], 0, [], ""
    installed: dict[str, tuple[str, Path]] = {}
    for info in site.glob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].rpartition("-")
        installed[str(canonicalize_name(name))] = (version, info)
    for name, version in sorted(locked.items()):
        found = installed.get(name)
        if found is None:
            if name in required:
                problems.append(f"{name} {version} is locked but not installed")
        elif found[0] != version:
            problems.append(f"{name} is installed at {found[0]}, locked at {version}")
    problems += [
        f"{name} is installed but not locked" for name in sorted(set(installed) - set(locked))
    ]
    file_problems, checked, damaged, digest = _check_files(venv, site, installed)
    return problems + file_problems, checked, damaged, digest


def _check_files(
    venv: Path, site: Path, installed: Mapping[str, tuple[str, Path]]
) -> tuple[list[str], int, list[str], str]:
    """Every ``RECORD`` file of ``installed`` hashed once: problems, count, damaged, digest."""
    problems: list[str] = []
    damaged: list[str] = []
    rows: list[tuple[str, str, str]] = []  # package, RECORD path, RECORD hash
    for name, (_, info) in sorted(installed.items()):
        try:
            rows += [(name, *row) for row in record_rows(info / "RECORD")]
        except OSError:
            problems.append(f"{info.name} has no RECORD")
            damaged.append(name)
    paths = sorted({os.path.normpath(site / row_path) for _, row_path, _ in rows})
    # hashlib releases the GIL on large buffers: threads hash files side by side.
    with ThreadPoolExecutor(max_workers=min(16, (os.cpu_count() or 1) * 2)) as pool:
        hashes = dict(zip(paths, pool.map(_file_hash, paths), strict=True))
    files: list[tuple[str, str]] = []
    prefix = site.relative_to(venv).as_posix()
    for name, row_path, expected in rows:
        actual = hashes[os.path.normpath(site / row_path)]
        if actual is None:
            problems.append(f"{row_path} is missing")
        elif actual != expected:
            problems.append(f"{row_path} does not match its RECORD hash")
        if actual != expected and name not in damaged:
            damaged.append(name)
        digest_path = in_venv(prefix, row_path)
        if digest_path is not None:
            files.append((digest_path, actual or "missing"))
    checked = sum(1 for value in hashes.values() if value is not None)
    return problems, checked, sorted(damaged), env_digest(files, venv_config(venv))


def _file_hash(path: str) -> str | None:
    """``sha256=<urlsafe base64>`` of the file at ``path`` (read once), ``None`` if unreadable."""
    try:
        with open(path, "rb") as handle:  # noqa: PTH123 - a str path from the pool
            digest = hashlib.file_digest(handle, "sha256").digest()
    except OSError:
        return None
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
