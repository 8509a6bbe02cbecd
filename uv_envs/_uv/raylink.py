"""Linking envs to the cluster's Ray, so each one works as a Ray worker's ``py_executable``.

A Ray worker's first line is ``import ray``, at the cluster's exact version and
under the cluster's Python minor. Installing Ray into every env costs about
250 MB each; instead the env gets one ``.pth`` file naming the directory that
holds the cluster's ``ray`` package. Python appends ``.pth`` entries to
``sys.path`` *after* the env's own site-packages, so the env's pins win over
whatever it borrows from there. A pin that breaks Ray is caught when the venv
is built, by running ``import ray`` in it, never later as a worker that dies
at start and is restarted forever.

Which Ray: ``Settings.ray`` is ``"auto"`` (the Ray this process can import,
found with ``importlib.util.find_spec`` without importing it), ``"off"``, or
the path of the cluster's interpreter, which is asked once per process.

The link is part of the store id (:func:`RayLinker.store_identity`), so a
shared venv made for one cluster is never handed to another.

The check costs a Python start and ``import ray`` (0.3-1 s), more than the
rest of a one-package ``add``. It records every top-level module name
``import ray`` looked up (found or not) in the venv (:data:`RECORD_NAME`). A
venv built as another checked venv plus a change (``add``, ``update``,
``remove``) is checked only when the change can alter what ``import ray``
loads: a distribution added, removed or changed whose files include one of
those names, or any ``.pth`` file (see :func:`.delta.touched_names`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Sequence
from pathlib import Path

import attrs

from uv_envs._errors import RayImportFailed, RayNotAvailable, RayVersionConflict
from uv_envs._models import RayLink

from .delta import touched_names
from .python import Interpreter

#: The file written into the env's site-packages.
PTH_NAME = "_uv_envs_ray.pth"
#: Seconds ``import ray`` may take in a new env (it takes about half a second).
IMPORT_TIMEOUT = 120.0
AUTO = "auto"
OFF = "off"

_PROBE = (
    "import importlib.util, importlib.metadata, json, sys\n"
    "spec = importlib.util.find_spec('ray')\n"
    "print(json.dumps(None if spec is None or not spec.origin else {"
    "'version': importlib.metadata.version('ray'), 'origin': spec.origin, "
    "'python': '.'.join(map(str, sys.version_info[:3])), 'executable': sys.executable}))\n"
)
#: Also prints every top-level name the import looked up, found or not (a finder that
#: only watches), and the names of startup hooks a new distribution could provide.
_IMPORT_CHECK = (
    "import json, sys\n"
    "class _Seen:\n"
    "    names = {'sitecustomize', 'usercustomize'}\n"
    "    @classmethod\n"
    "    def find_spec(cls, name, path=None, target=None):\n"
    "        cls.names.add(name.partition('.')[0])\n"
    "sys.meta_path.insert(0, _Seen)\n"
    "import ray\n"
    "names = _Seen.names | {n.partition('.')[0] for n in sys.modules}\n"
    "print(ray.__version__)\n"
    "print(json.dumps(sorted(names)))\n"
)
#: Any TOML spelling of a ``name`` of ray: without one the lock pins no Ray (no parse needed).
_RAY_ENTRY = re.compile(r"""\bname\s*=\s*["']ray["']""")
#: Written into a checked venv: the Ray, interpreter and names its check saw.
RECORD_NAME = ".uv-envs-ray-check.json"
# Variables that would let the check see more than the env itself has.
_SCRUBBED = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")


@attrs.frozen
class RayInstall:
    """The cluster's Ray: its version, the directory holding the package, its interpreter."""

    version: str
    site_dir: Path
    python: str
    executable: Path

    @property
    def minor(self) -> str:
        return minor_of(self.python)


def minor_of(version: str) -> str:
    """``3.12`` of ``3.12.1`` (or of ``3.12``): the one spelling of a Python minor here."""
    return ".".join(version.split(".")[:2])


@functools.cache
def in_process() -> RayInstall | None:
    """The Ray this process can import, or None; found without importing it."""
    try:
        spec = importlib.util.find_spec("ray")
        version = importlib.metadata.version("ray")
    except (ImportError, ValueError, importlib.metadata.PackageNotFoundError):
        return None
    if spec is None or spec.origin is None:
        return None
    return RayInstall(
        version=version,
        site_dir=Path(spec.origin).resolve().parent.parent,
        python=".".join(str(p) for p in sys.version_info[:3]),
        executable=Path(sys.executable),
    )


_asked: dict[str, RayInstall] = {}
_asked_lock = threading.Lock()


def of_interpreter(python: str) -> RayInstall:
    """The Ray the interpreter ``python`` imports; raises :class:`~uv_envs.RayNotAvailable`."""
    with _asked_lock:
        if python in _asked:
            return _asked[python]
    try:
        completed = subprocess.run(
            [python, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=IMPORT_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise RayNotAvailable(f"cannot run the cluster's Python {python!r}: {exc}") from exc
    if completed.returncode != 0:
        detail = completed.stderr.strip()
        raise RayNotAvailable(f"the cluster's Python {python!r} failed: {detail}")
    try:
        data = json.loads(completed.stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise RayNotAvailable(f"the cluster's Python {python!r} printed no answer") from exc
    if data is None:
        raise RayNotAvailable(f"the cluster's Python {python!r} cannot import ray")
    install = RayInstall(
        version=str(data["version"]),
        site_dir=Path(data["origin"]).resolve().parent.parent,
        python=str(data["python"]),
        executable=Path(data["executable"]),
    )
    with _asked_lock:
        _asked[python] = install
    return install


def resolve(setting: str) -> RayInstall | None:
    """The Ray a ``Settings.ray`` value names: ``"auto"``, ``"off"`` or an interpreter."""
    if setting == OFF:
        return None
    if setting == AUTO:
        return in_process()
    return of_interpreter(setting)


@attrs.define
class RayLinker:
    """Applies ``Settings.ray`` to the venvs a manager builds (resolved on first use)."""

    setting: str
    timeout: float = IMPORT_TIMEOUT
    _install: RayInstall | None = attrs.field(default=None, init=False)
    _resolved: bool = attrs.field(default=False, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def install(self) -> RayInstall | None:
        """The cluster's Ray, or None when linking is off or (``auto``) no Ray is importable."""
        with self._lock:
            if not self._resolved:
                # Resolved on first use, not in EnvManager(): naming an interpreter runs it.
                self._install = resolve(self.setting)
                self._resolved = True
            return self._install

    def _for(self, interpreter: Interpreter) -> RayInstall | None:
        """The Ray to link a venv on ``interpreter`` to: None when off or on another minor."""
        install = self.install()
        if install is None or minor_of(interpreter.version) != install.minor:
            return None
        return install

    def store_identity(self, interpreter: Interpreter) -> dict[str, str] | None:
        """What the link adds to a store id; None when the venv gets no link."""
        install = self._for(interpreter)
        if install is None:
            return None
        return {
            "ray": install.version,
            "site_dir": str(install.site_dir),
            "executable": str(install.executable),
        }

    def describe(self, interpreter: Interpreter) -> RayLink | None:
        """What the env's metadata records about its link (None when linking is off)."""
        install = self.install()
        if install is None:
            return None
        error = None
        if minor_of(interpreter.version) != install.minor:
            error = (
                f"it runs Python {interpreter.version}, but the cluster's Ray {install.version} "
                f"runs on Python {install.python} ({install.executable}); build it with "
                f"python={install.minor!r} to run it on Ray"
            )
        return RayLink(
            ray_version=install.version,
            python=install.python,
            site_dir=str(install.site_dir),
            error=error,
        )

    def check_lock(self, lock_text: str, interpreter: Interpreter) -> None:
        """Refuse a lock that pins a Ray other than the cluster's, before anything installs."""
        install = self._for(interpreter)
        if install is None or _RAY_ENTRY.search(lock_text) is None:
            return
        for package in tomllib.loads(lock_text).get("package", []):
            if package.get("name") == "ray" and package.get("version") != install.version:
                raise RayVersionConflict(
                    f"the env locks ray {package.get('version')}, but the cluster runs ray "
                    f"{install.version} ({install.site_dir}); pin ray=={install.version} "
                    "or leave ray out (the env borrows the cluster's)"
                )

    def link(self, venv: Path, interpreter: Interpreter, *, bases: Sequence[Path] = ()) -> None:
        """Write the ``.pth`` into a freshly built venv, then check ``import ray`` in it.

        ``bases`` are checked venvs this one may differ from by a few
        distributions, tried in turn: when the difference with one touches
        nothing ``import ray`` looked up there, that check holds here too and is
        not run again (comparing costs a read of each side's ``RECORD`` files).
        """
        install = self._for(interpreter)
        if install is None:
            return
        site = venv / "lib" / f"python{install.minor}" / "site-packages"
        site.mkdir(parents=True, exist_ok=True)
        (site / PTH_NAME).write_text(f"{install.site_dir}\n")
        identity: dict[str, object] = {
            "ray": install.version,
            "site_dir": str(install.site_dir),
            "python": [str(interpreter.path), interpreter.version],
        }
        for base in bases:
            record = _read_record(base, identity)
            if record is None:
                continue
            touched = touched_names(base / site.relative_to(venv), site)
            if touched is not None and not touched & set(record):
                _write_record(venv, identity, record)
                return
        names = check_import(venv / "bin" / "python", install, timeout=self.timeout)
        _write_record(venv, identity, names)


def check_import(
    python: Path, install: RayInstall, *, timeout: float = IMPORT_TIMEOUT
) -> list[str]:
    """Run ``import ray`` with ``python``; raise a :class:`~uv_envs.RayIncompatible` if it fails.

    Returns the top-level module names the import looked up.
    """
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    try:
        completed = subprocess.run(
            [str(python), "-c", _IMPORT_CHECK],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise RayImportFailed(
            f"import ray did not finish within {timeout:g} s in {python}"
        ) from exc
    except OSError as exc:
        raise RayImportFailed(f"cannot run {python}: {exc}") from exc
    if completed.returncode != 0:
        raise RayImportFailed(
            f"import ray fails in the env ({python}); a package it pins breaks the "
            f"cluster's Ray {install.version}",
            stderr=completed.stderr,
        )
    lines = completed.stdout.strip().splitlines()
    found = lines[-2] if len(lines) >= 2 else ""  # noqa: PLR2004 - the version, then the names
    if found != install.version:
        raise RayVersionConflict(
            f"the env imports ray {found}, but the cluster runs ray {install.version}"
        )
    return [str(name) for name in json.loads(lines[-1])]


def _read_record(venv: Path, identity: dict[str, object]) -> list[str] | None:
    """The names a check of ``venv`` recorded, if it was made for this Ray and interpreter."""
    try:
        data = json.loads((venv / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("for") != identity:
        return None
    names = data.get("names")
    return [str(n) for n in names] if isinstance(names, list) else None


def _write_record(venv: Path, identity: dict[str, object], names: list[str]) -> None:
    (venv / RECORD_NAME).write_text(json.dumps({"for": identity, "names": sorted(names)}))
