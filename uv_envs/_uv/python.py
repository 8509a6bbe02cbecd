"""Resolving ``"3.12"``-style requests to an installed interpreter.

uv's own discovery (``uv python list``) does not look inside pyenv's version
folders when only pyenv's shims are on ``PATH``, and shims of versions that are
not active fail when run. So candidates come from four places, in order: the
running interpreter, the configured search paths, ``$PYENV_ROOT/versions/*``
(``~/.pyenv`` by default) and uv's list. Interpreters found outside uv's list
are asked their version once per process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

import attrs

from uv_envs._errors import PythonNotFound, StorageError
from uv_envs._validation import normalize_python_request

from .commands import UvOptions, python_list_command
from .executor import UvExecutor

_PROBE = "import sys, platform; print(platform.python_implementation(), *sys.version_info[:3])"


@attrs.frozen
class Interpreter:
    """An installed CPython interpreter."""

    path: Path
    version: str

    def matches(self, request: str) -> bool:
        return self.version == request or self.version.startswith(request + ".")


class InterpreterFinder(Protocol):
    """Resolves a version request to an installed interpreter."""

    def find(self, request: str) -> Interpreter:
        """The interpreter for ``request``; raises :class:`~uv_envs.PythonNotFound`."""
        ...

    def installed(self) -> list[Interpreter]:
        """Every interpreter found, in preference order."""
        ...


@attrs.define
class PythonFinder:
    """Finds interpreters; caches what it learned for the life of the finder."""

    executor: UvExecutor
    options: UvOptions
    search_paths: tuple[Path, ...] = ()
    environ: Mapping[str, str] = attrs.field(factory=lambda: dict(os.environ))
    _cache: list[Interpreter] | None = attrs.field(default=None, init=False)
    _probed: dict[Path, str | None] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def find(self, request: str) -> Interpreter:
        """The first installed interpreter matching ``request`` ("3.12" or "3.12.1")."""
        request = normalize_python_request(request)
        quick = self._quick_find(request)
        if quick is not None:
            return quick
        for interpreter in self._interpreters(refresh=False):
            if interpreter.matches(request):
                return interpreter
        # Something may have been installed since we last looked.
        interpreters = self._interpreters(refresh=True)
        for interpreter in interpreters:
            if interpreter.matches(request):
                return interpreter
        raise PythonNotFound(request, sorted({i.version for i in interpreters}, key=_version_key))

    def installed(self) -> list[Interpreter]:
        """Every interpreter found, in preference order."""
        return list(self._interpreters(refresh=False))

    def _interpreters(self, *, refresh: bool) -> list[Interpreter]:
        with self._lock:
            if self._cache is None or refresh:
                self._cache = list(_dedupe(self._discover()))
            return self._cache

    def _quick_find(self, request: str) -> Interpreter | None:
        """The running interpreter or a pyenv folder named for the version, without a full scan.

        A full discovery probes every interpreter it finds (a subprocess
        each); most requests are answered before that is needed.
        """
        running = _running_interpreter()
        if running is not None and running.matches(request):
            return running
        with self._lock:
            for folder in self._pyenv_folders():
                if folder.name == request or folder.name.startswith(request + "."):
                    for candidate in _executables_in(folder):
                        version = self._probe(candidate)
                        if version is not None and Interpreter(candidate, version).matches(request):
                            return Interpreter(candidate, version)
        return None

    def _pyenv_folders(self) -> list[Path]:
        pyenv_root = Path(self.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
        versions = pyenv_root / "versions"
        if not versions.is_dir():
            return []
        return sorted(versions.iterdir(), key=lambda p: _version_key(p.name), reverse=True)

    def _discover(self) -> Iterator[Interpreter]:
        # The interpreter running uv-envs is always a candidate, and needs no probe.
        running = _running_interpreter()
        if running is not None:
            yield running
        for candidate in self._local_candidates():
            version = self._probe(candidate)
            if version is not None:
                yield Interpreter(candidate, version)
        yield from self._uv_interpreters()

    def _local_candidates(self) -> Iterator[Path]:
        for path in self.search_paths:
            yield from _executables_in(path)
        for folder in self._pyenv_folders():
            yield from _executables_in(folder)

    def _probe(self, executable: Path) -> str | None:
        if executable not in self._probed:
            self._probed[executable] = _ask_version(executable)
        return self._probed[executable]

    def _uv_interpreters(self) -> Iterator[Interpreter]:
        result = self.executor.run(python_list_command(self.options))
        if not result.ok:
            return
        try:
            entries = json.loads(result.stdout or "[]")
        except json.JSONDecodeError as exc:
            raise StorageError("uv python list printed something that is not JSON") from exc
        for entry in entries:
            if entry.get("implementation", "cpython") != "cpython" or not entry.get("path"):
                continue
            if "shims" in Path(entry["path"]).parts:
                # pyenv shims of inactive versions fail when run; the real
                # interpreters were found under versions/ already.
                continue
            yield Interpreter(Path(entry["path"]), str(entry["version"]))


def _running_interpreter() -> Interpreter | None:
    running = Path(getattr(sys, "_base_executable", sys.executable) or sys.executable)
    if not running.is_file():
        return None
    return Interpreter(running, ".".join(str(p) for p in sys.version_info[:3]))


def _executables_in(path: Path) -> Iterator[Path]:
    if path.is_file():
        yield path
        return
    for name in ("bin/python3", "bin/python", "python3", "python"):
        candidate = path / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            yield candidate
            return


def _ask_version(executable: Path) -> str | None:
    try:
        completed = subprocess.run(
            [str(executable), "-I", "-S", "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    parts = completed.stdout.split()
    if completed.returncode != 0 or len(parts) != 4 or parts[0] != "CPython":  # noqa: PLR2004
        return None
    if int(parts[1]) != 3:  # noqa: PLR2004 - only Python 3 environments are built
        return None
    return ".".join(parts[1:])


def _dedupe(interpreters: Iterable[Interpreter]) -> Iterator[Interpreter]:
    seen: set[Path] = set()
    for interpreter in interpreters:
        try:
            real = interpreter.path.resolve()
        except OSError:
            continue
        if real in seen:
            continue
        seen.add(real)
        yield interpreter


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split(".") if p.isdigit())
