"""Fakes of uv and of interpreter discovery, and a counting wrapper for the real uv."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import attrs
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from uv_envs._errors import PythonNotFound
from uv_envs._store.project import PROJECT_NAME, locked_versions
from uv_envs._uv.commands import UvInvocation
from uv_envs._uv.executor import UvExecutor, UvResult, uv_identity
from uv_envs._uv.python import Interpreter
from uv_envs._validation import normalize_python_request

_RUNNING_VERSION = ".".join(str(p) for p in sys.version_info[:3])


@attrs.define
class FakePythonFinder:
    """Resolves version requests against a fixed list (the running interpreter by default)."""

    interpreters: Sequence[Interpreter] = attrs.field(
        factory=lambda: [Interpreter(Path(sys.executable), _RUNNING_VERSION)]
    )

    def find(self, request: str) -> Interpreter:
        request = normalize_python_request(request)
        for interpreter in self.interpreters:
            if interpreter.matches(request):
                return interpreter
        raise PythonNotFound(request, [i.version for i in self.interpreters])

    def installed(self) -> list[Interpreter]:
        return list(self.interpreters)


@attrs.define
class CountingExecutor:
    """Wraps any executor (a real one too) and counts the uv subcommands it ran.

    ``count("lock")`` counts resolutions, ``count("sync")`` installs.
    """

    inner: UvExecutor
    calls: list[UvInvocation] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def run(self, invocation: UvInvocation) -> UvResult:
        with self._lock:
            self.calls.append(invocation)
        return self.inner.run(invocation)

    def identity(self) -> str | None:
        """The wrapped executor's uv identity (see ``uv_envs._uv.executor.IdentifiesUv``)."""
        return uv_identity(self.inner)

    def count(self, subcommand: str, *, check: bool | None = None) -> int:
        """Calls of ``subcommand``; with ``check``, only those with (or without) ``--check``."""
        with self._lock:
            return sum(
                1
                for call in self.calls
                if call.args[:1] == (subcommand,)
                and (check is None or ("--check" in call.args) == check)
            )


@attrs.define
class FakeUvExecutor:
    """A stand-in for uv that resolves against ``catalog`` (name -> versions).

    ``calls`` lists every invocation; ``count("lock")`` counts one subcommand.
    ``fail_next(subcommand, stderr)`` makes the next such call fail. ``version``
    is the uv identity it reports; change it to play a uv upgrade.
    """

    catalog: Mapping[str, Sequence[str]] = attrs.field(factory=dict)
    calls: list[UvInvocation] = attrs.field(factory=list)
    version: str | None = "fake-uv 0.0.0"
    _failures: dict[str, tuple[str, int]] = attrs.field(factory=dict)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def count(self, subcommand: str) -> int:
        with self._lock:
            return sum(1 for call in self.calls if call.args[:1] == (subcommand,))

    def identity(self) -> str | None:
        return self.version

    def fail_next(
        self, subcommand: str, stderr: str = "error: injected failure", exit_code: int = 2
    ) -> None:
        with self._lock:
            self._failures[subcommand] = (stderr, exit_code)

    def run(self, invocation: UvInvocation) -> UvResult:
        with self._lock:
            self.calls.append(invocation)
            failure = self._failures.pop(invocation.args[0], None)
        command = ("uv", *invocation.args)
        if failure is not None:
            return UvResult(command, failure[1], "", failure[0], 1)
        try:
            stdout = self._dispatch(invocation)
        except _Unresolvable as exc:
            stderr = f"  x No solution found when resolving dependencies:\n  {exc}\n"
            return UvResult(command, 1, "", stderr, 1)
        return UvResult(command, 0, stdout, "", 1)

    # --- subcommands ------------------------------------------------------------------

    def _dispatch(self, invocation: UvInvocation) -> str:  # noqa: C901, PLR0911 - a branch per subcommand
        args = invocation.args
        project = invocation.cwd
        if args[0] == "cache":
            return ""
        if args[:2] == ("python", "list"):
            return json.dumps(
                [{"implementation": "cpython", "path": sys.executable, "version": _RUNNING_VERSION}]
            )
        assert project is not None, f"uv {args[0]} needs a project directory"
        if args[0] == "lock":
            if "--check" in args:
                return ""
            upgrade_all = "--upgrade" in args
            self._lock_with(
                project,
                _read_dependencies(project),
                upgrade_all=upgrade_all,
                upgrade=_option_values(args, "--upgrade-package"),
            )
            return ""
        if args[0] == "add":
            requirements = list(_after_separator(args))
            requirements_file = _option_values(args, "--requirements")
            for path in requirements_file:
                requirements += [
                    line.strip()
                    for line in Path(path).read_text().splitlines()
                    if line.strip() and not line.startswith(("#", "-"))
                ]
            declared = _read_dependencies(project)
            for requirement in requirements:
                name = canonicalize_name(Requirement(requirement).name)
                declared = [d for d in declared if canonicalize_name(Requirement(d).name) != name]
                declared.append(requirement)
            self._lock_with(
                project,
                declared,
                upgrade_all=False,
                upgrade=_option_values(args, "--upgrade-package"),
            )
            _write_dependencies(project, declared)
            return ""
        if args[0] == "remove":
            names = {canonicalize_name(n) for n in _after_separator(args)}
            declared = _read_dependencies(project)
            kept = [d for d in declared if canonicalize_name(Requirement(d).name) not in names]
            self._lock_with(project, kept, upgrade_all=False, upgrade=())
            _write_dependencies(project, kept)
            return ""
        if args[0] == "sync":
            _build_venv(
                project, invocation.env.get("UV_PROJECT_ENVIRONMENT", str(project / ".venv"))
            )
            return ""
        if args[0] == "export":
            locked = _read_lock(project)
            if "cyclonedx1.5" in args:  # the SBOM's shape, with the locked packages only
                components = [
                    {"type": "library", "name": name, "version": version}
                    for name, version in sorted(locked.items())
                ]
                sbom = {"bomFormat": "CycloneDX", "specVersion": "1.5", "components": components}
                return json.dumps(sbom)
            return "".join(f"{name}=={version}\n" for name, version in sorted(locked.items()))
        raise AssertionError(f"FakeUvExecutor does not know uv {' '.join(args)}")

    def _lock_with(
        self, project: Path, declared: list[str], *, upgrade_all: bool, upgrade: Iterable[str]
    ) -> None:
        previous = {} if upgrade_all else _read_lock(project)
        for name in upgrade:
            previous.pop(str(canonicalize_name(name)), None)
        resolved: dict[str, str] = {}
        for text in declared:
            requirement = Requirement(text)
            name = str(canonicalize_name(requirement.name))
            versions = [Version(v) for v in self.catalog.get(name, ())]
            candidates = sorted(
                v for v in versions if requirement.specifier.contains(v, prereleases=True)
            )
            if not candidates:
                raise _Unresolvable(
                    f"Because {name} was not found in the package registry and your project "
                    f"depends on {text}, we can conclude that your project's requirements "
                    "are unsatisfiable."
                )
            kept = previous.get(name)
            choice = str(candidates[-1])
            if kept is not None and Version(kept) in candidates:
                choice = kept
            resolved[name] = choice
        _write_lock(project, resolved, declared)


class _Unresolvable(Exception):
    pass


def _after_separator(args: Sequence[str]) -> Sequence[str]:
    return args[args.index("--") + 1 :] if "--" in args else ()


def _option_values(args: Sequence[str], option: str) -> list[str]:
    end = args.index("--") if "--" in args else len(args)
    return [args[i + 1] for i in range(end - 1) if args[i] == option]


_DEPENDENCIES_RE = re.compile(r"dependencies = \[\n(.*?)\]\n", re.DOTALL)


def _read_dependencies(project: Path) -> list[str]:
    text = (project / "pyproject.toml").read_text()
    match = _DEPENDENCIES_RE.search(text)
    if match is None:
        return []
    return [
        json.loads(line.strip().rstrip(",")) for line in match.group(1).splitlines() if line.strip()
    ]


def _write_dependencies(project: Path, declared: list[str]) -> None:
    path = project / "pyproject.toml"
    body = "".join(f"    {json.dumps(d)},\n" for d in declared)
    path.write_text(
        _DEPENDENCIES_RE.sub(lambda _: f"dependencies = [\n{body}]\n", path.read_text(), count=1)
    )


def _read_lock(project: Path) -> dict[str, str]:
    import tomllib  # noqa: PLC0415

    try:
        with (project / "uv.lock").open("rb") as handle:
            return locked_versions(tomllib.load(handle))
    except FileNotFoundError:
        return {}


def _write_lock(project: Path, resolved: Mapping[str, str], declared: Sequence[str]) -> None:
    lines = [
        "version = 1",
        "revision = 3",
        "",
        "[[package]]",
        f'name = "{PROJECT_NAME}"',
        'version = "0.0.0"',
        'source = { virtual = "." }',
        "",
    ]
    for name, version in sorted(resolved.items()):
        lines += [
            "[[package]]",
            f'name = "{name}"',
            f'version = "{version}"',
            'source = { registry = "fake" }',
            "",
        ]
    lines += ["# declared: " + json.dumps(list(declared))]
    (project / "uv.lock").write_text("\n".join(lines) + "\n")


def _build_venv(project: Path, venv: str) -> None:
    venv_path = Path(venv)
    bin_dir = venv_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    python = bin_dir / "python"
    if not python.exists():
        os.symlink(sys.executable, python)
    (venv_path / "pyvenv.cfg").write_text(
        f"home = {Path(sys.executable).parent}\nversion_info = {_RUNNING_VERSION}\n"
    )
    # Where a real venv has it, so that a check (verify, sync) finds a healthy venv.
    minor = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    site = venv_path / "lib" / minor / "site-packages"
    site.mkdir(parents=True, exist_ok=True)
    for name, version in _read_lock(project).items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir(exist_ok=True)
        (info / "RECORD").write_text(f"{name}/__init__.py,,\n")
