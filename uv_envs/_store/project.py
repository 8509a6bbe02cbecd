"""The files of one generation: pyproject.toml written by us, uv.lock read back.

Every environment's project has the same fixed name, so two keys with the same
spec produce the same lock; the key is recorded in ``[tool.uv-envs]``, which uv
ignores.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

import attrs
from packaging.markers import InvalidMarker, Marker, UndefinedEnvironmentName
from packaging.utils import canonicalize_name

from uv_envs._errors import InvalidInput, StorageError
from uv_envs._models import EnvKey, EnvSpec, IndexSettings
from uv_envs._validation import canonical_requirement, normalize_python_request

PROJECT_NAME = "uv-envs-node"
_REQUIRES = re.compile(r"^==\s*(\d+\.\d+(?:\.\d+)?)(?:\.\*)?$")


def spec_hash(spec: EnvSpec, index: IndexSettings) -> str:
    """A digest of what decides an environment's content.

    Independent of package order and of name spelling (PEP 503); markers,
    extras and specifiers count, and so do the Python request and the index
    settings.
    """
    document = {
        "packages": sorted({canonical_requirement(p) for p in spec.packages}),
        "python": spec.python,
        "requirements_text": spec.requirements_text,
        # attrs.asdict: the JSON of converter.unstructure (tests/api/test_properties.py
        # holds them equal), without generating a converter function per process.
        "index": attrs.asdict(index),
    }
    encoded = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(encoded).hexdigest()


def requires_python(python_request: str) -> str:
    """``==3.12.*`` for ``3.12``; ``==3.12.1`` for ``3.12.1``."""
    return f"=={python_request}" if python_request.count(".") == 2 else f"=={python_request}.*"  # noqa: PLR2004


def _toml_string(value: str) -> str:
    # JSON's escapes for quotes, backslashes and control characters are valid TOML;
    # other characters stay literal (TOML has no surrogate-pair escapes), except
    # DEL, which TOML wants escaped and JSON leaves alone.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def render_pyproject(key: EnvKey, packages: tuple[str, ...], python_request: str) -> str:
    """The pyproject.toml of a non-package project (uv never builds it)."""
    dependencies = "".join(f"    {_toml_string(p)},\n" for p in packages)
    return (
        "[project]\n"
        f'name = "{PROJECT_NAME}"\n'
        'version = "0.0.0"\n'
        f"requires-python = {_toml_string(requires_python(python_request))}\n"
        f"dependencies = [\n{dependencies}]\n"
        "\n"
        "[tool.uv]\n"
        "package = false\n"
        "\n"
        "[tool.uv-envs]\n"
        f"workflow_id = {_toml_string(key.workflow_id)}\n"
        f"node_id = {_toml_string(key.node_id)}\n"
        f"version_id = {_toml_string(key.version_id)}\n"
    )


def declared_spec(pyproject_toml: str) -> tuple[tuple[str, ...], str]:
    """The dependencies and the Python request of a project :func:`render_pyproject` wrote.

    Its inverse, for a project exported elsewhere (another root, a Ray driver);
    raises :class:`~uv_envs.InvalidInput` for one it could not have written.
    """
    try:
        project = tomllib.loads(pyproject_toml).get("project", {})
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"pyproject_toml is not TOML: {exc}") from exc
    if not isinstance(project, dict):
        raise InvalidInput("pyproject_toml has no [project] table")
    match = _REQUIRES.match(str(project.get("requires-python", "")).strip())
    if match is None:
        raise InvalidInput(
            "pyproject_toml must say requires-python = '==X.Y.*' (as uv-envs exports it)"
        )
    dependencies = project.get("dependencies", [])
    return tuple(str(d) for d in dependencies), normalize_python_request(match.group(1))


def read_declared(project_dir: Path) -> tuple[str, ...]:
    """``project.dependencies`` of the pyproject.toml in ``project_dir``."""
    document = _read_toml(project_dir / "pyproject.toml")
    project = document.get("project", {})
    dependencies = project.get("dependencies", []) if isinstance(project, dict) else []
    return tuple(str(d) for d in dependencies)


def read_locked(project_dir: Path) -> dict[str, str]:
    """Package name -> version from the uv.lock in ``project_dir`` (the project itself left out)."""
    document = _read_toml(project_dir / "uv.lock")
    return locked_versions(document)


def locked_versions(document: Mapping[str, object]) -> dict[str, str]:
    packages = document.get("package", [])
    result: dict[str, str] = {}
    if not isinstance(packages, list):
        return result
    for package in packages:
        if not isinstance(package, dict):
            continue
        source = package.get("source", {})
        if isinstance(source, dict) and (
            source.get("virtual") == "." or source.get("editable") == "."
        ):
            continue
        name, version = package.get("name"), package.get("version")
        if isinstance(name, str) and isinstance(version, str):
            result[str(canonicalize_name(name))] = version
    return result


def read_lock(project_dir: Path) -> dict[str, object]:
    """The uv.lock in ``project_dir`` as a document."""
    return _read_toml(project_dir / "uv.lock")


def required_packages(document: Mapping[str, object], environment: Mapping[str, str]) -> set[str]:
    """The locked packages this platform installs: those its markers lead to.

    Reachable from the project by dependency edges whose markers hold in
    ``environment`` (a marker environment, as PEP 508 names it). uv locks for
    every platform at once, so a lock holds packages (``colorama`` on Linux)
    that uv rightly leaves out of this venv. A marker that cannot be evaluated
    counts as true: when in doubt, a package is required.
    """
    packages = document.get("package", [])
    by_name: dict[str, list[Mapping[str, object]]] = {}
    roots: list[Mapping[str, object]] = []
    for package in packages if isinstance(packages, list) else []:
        if not isinstance(package, dict) or not isinstance(package.get("name"), str):
            continue
        by_name.setdefault(str(canonicalize_name(package["name"])), []).append(package)
        source = package.get("source", {})
        if isinstance(source, dict) and "." in (source.get("virtual"), source.get("editable")):
            roots.append(package)
    required: set[str] = set()
    seen: set[tuple[str, tuple[str, ...]]] = set()
    pending: list[tuple[Mapping[str, object], tuple[str, ...]]] = [(root, ()) for root in roots]
    while pending:
        package, extras = pending.pop()
        for dep in _edges(package, extras):
            name = str(canonicalize_name(str(dep.get("name", ""))))
            marker = dep.get("marker")
            if isinstance(marker, str) and not _holds(marker, environment):
                continue
            raw = dep.get("extra", [])
            wanted = tuple(sorted(str(e) for e in raw)) if isinstance(raw, list) else ()
            if (name, wanted) in seen:
                continue
            seen.add((name, wanted))
            required.add(name)
            pending.extend((target, wanted) for target in by_name.get(name, []))
    return required


def _edges(package: Mapping[str, object], extras: tuple[str, ...]) -> list[Mapping[str, object]]:
    """A locked package's dependency entries, with those of the extras asked of it."""
    edges = package.get("dependencies", [])
    found: list[Mapping[str, object]] = (
        [d for d in edges if isinstance(d, dict)] if isinstance(edges, list) else []
    )
    optional = package.get("optional-dependencies", {})
    for extra in extras:
        more = optional.get(extra, []) if isinstance(optional, dict) else []
        found += [d for d in more if isinstance(d, dict)] if isinstance(more, list) else []
    return found


def _holds(marker: str, environment: Mapping[str, str]) -> bool:
    try:
        return Marker(marker).evaluate({**environment, "extra": ""})
    except (InvalidMarker, UndefinedEnvironmentName, ValueError):
        return True


def _read_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
