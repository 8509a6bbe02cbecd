"""Input checks that run before anything touches the disk.

Each function either returns a normalized value or raises a subclass of
:class:`~uv_envs.InvalidInput`. None of them has side effects, so a rejected
request has changed nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from packaging.requirements import InvalidRequirement as _PackagingInvalidRequirement
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ._errors import (
    DirectReferenceNotAllowed,
    InvalidIdentifier,
    InvalidPythonVersion,
    InvalidRequirement,
    RequirementsOptionNotAllowed,
)

MAX_ID_LENGTH = 128
MAX_REQUIREMENT_LENGTH = 1024
#: Packages (or requirement lines) one request may name; more is InvalidRequirement.
MAX_PACKAGES = 1000
MAX_REQUIREMENTS_TEXT = 256 * 1024

_ID_RE = re.compile(r"[A-Za-z0-9._-]+")
_PYTHON_RE = re.compile(r"(?P<major>3)\.(?P<minor>[0-9]{1,2})(?:\.(?P<micro>[0-9]{1,3}))?")
# A bare path or file name: "./pkg", "../x", "/abs", "pkg.whl", "C:\x". pip would install these.
_PATHLIKE_RE = re.compile(
    r"^(\.{1,2}[/\\]|[/\\~]|[A-Za-z]:[/\\]|[A-Za-z][A-Za-z0-9+.-]*://)|\.(whl|tar\.gz|zip|tar\.bz2)$"
)


def validate_id(value: object, field: str, *, allow_empty: bool = False) -> str:
    """Return ``value`` if it is a usable workflow, node or version id.

    Ids are 1-128 characters from ``[A-Za-z0-9._-]`` and are not ``.`` or
    ``..``, so each maps to exactly one directory name inside the root.
    """
    if not isinstance(value, str):
        raise InvalidIdentifier(f"{field} must be a string, not {type(value).__name__}")
    if value == "":
        if allow_empty:
            return value
        raise InvalidIdentifier(f"{field} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdentifier(
            f"{field} is {len(value)} characters long; at most {MAX_ID_LENGTH} are allowed"
        )
    if _ID_RE.fullmatch(value) is None:
        raise InvalidIdentifier(
            f"{field} {_shorten(value)!r} may only contain letters, digits, '.', '_' and '-'"
        )
    if value in {".", ".."}:
        raise InvalidIdentifier(f"{field} must not be {value!r}")
    return value


def parse_requirement(text: object, *, allow_direct_references: bool = False) -> Requirement:
    """Parse one PEP 508 requirement string as uv-envs accepts it.

    Options (anything starting with ``-``) are refused so that no user string is
    ever read by uv as a flag; direct references (URLs, paths, VCS) are refused
    unless allowed, because building an arbitrary source tree runs its code.
    """
    if not isinstance(text, str):
        raise InvalidRequirement(f"a package must be a string, not {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InvalidRequirement("a package must not be empty")
    if len(stripped) > MAX_REQUIREMENT_LENGTH:
        raise InvalidRequirement(
            f"a package string is {len(stripped)} characters long; "
            f"at most {MAX_REQUIREMENT_LENGTH} are allowed"
        )
    if "\x00" in stripped or "\n" in stripped or "\r" in stripped:
        raise InvalidRequirement(f"package {_shorten(stripped)!r} contains a control character")
    if stripped.startswith("-"):
        raise InvalidRequirement(
            f"package {_shorten(stripped)!r} looks like a command-line option; "
            "give a requirement such as 'requests>=2'"
        )
    if _PATHLIKE_RE.search(stripped) and not allow_direct_references:
        raise DirectReferenceNotAllowed(
            f"package {_shorten(stripped)!r} is a path or URL; "
            "direct references are disabled (Settings.allow_direct_references)"
        )
    try:
        requirement = Requirement(stripped)
    except _PackagingInvalidRequirement as exc:
        raise InvalidRequirement(
            f"package {_shorten(stripped)!r} is not a PEP 508 requirement: {exc}"
        ) from exc
    if requirement.url is not None and not allow_direct_references:
        raise DirectReferenceNotAllowed(
            f"package {requirement.name!r} is a direct reference ({_shorten(requirement.url)}); "
            "direct references are disabled (Settings.allow_direct_references)"
        )
    return requirement


def parse_requirements(
    packages: Iterable[object], *, allow_direct_references: bool = False
) -> tuple[str, ...]:
    """Validate a list of package strings and return them normalized by ``packaging``."""
    if isinstance(packages, str | bytes):
        raise InvalidRequirement("packages must be a list of strings, not one string")
    result = tuple(
        _normalized(p, allow_direct_references=allow_direct_references) for p in packages
    )
    if len(result) > MAX_PACKAGES:
        raise InvalidRequirement(f"{len(result)} packages given; at most {MAX_PACKAGES} allowed")
    return result


def parse_requirements_text(  # noqa: C901 - one check per kind of line
    text: str | bytes,
    *,
    allow_options: bool = False,
    allow_direct_references: bool = False,
) -> tuple[tuple[str, ...], bool]:
    """Split a requirements.txt text into requirement strings.

    Returns ``(requirements, has_options)``. Comments, blank lines and line
    continuations are handled; a line with a pip option raises
    :class:`RequirementsOptionNotAllowed` unless ``allow_options`` is true, in
    which case the text must be handed to uv whole (``has_options`` is true).
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequirement("the requirements text is not UTF-8") from exc
    if len(text) > MAX_REQUIREMENTS_TEXT:
        raise InvalidRequirement(
            f"the requirements text is {len(text)} characters; at most {MAX_REQUIREMENTS_TEXT}"
        )
    if "\x00" in text:
        raise InvalidRequirement("the requirements text contains a NUL byte")
    requirements: list[str] = []
    has_options = False
    for line in _logical_lines(text):
        if line.startswith("-"):
            if not allow_options:
                option = line.split()[0].split("=")[0]
                raise RequirementsOptionNotAllowed(
                    f"the requirements text uses the option {_shorten(option)!r}; options are "
                    "disabled (Settings.allow_requirements_options)"
                )
            has_options = True
            continue
        # pip allows "pkg --hash=..." per-line options; they are options too.
        if " -" in line or "\t-" in line:
            if not allow_options:
                raise RequirementsOptionNotAllowed(
                    f"the requirement line {_shorten(line)!r} carries an option; options are "
                    "disabled (Settings.allow_requirements_options)"
                )
            has_options = True
            continue
        requirements.append(_normalized(line, allow_direct_references=allow_direct_references))
    if len(requirements) > MAX_PACKAGES:
        raise InvalidRequirement(
            f"{len(requirements)} requirements given; at most {MAX_PACKAGES} allowed"
        )
    return tuple(requirements), has_options


def _normalized(text: object, *, allow_direct_references: bool) -> str:
    """``packaging``'s spelling of a requirement, or the original when that does not re-parse.

    (``packaging`` re-quotes marker values without escaping, so a value with a
    backslash or quote can come out unparseable.)
    """
    requirement = parse_requirement(text, allow_direct_references=allow_direct_references)
    spelled = str(requirement)
    try:
        Requirement(spelled)
    except _PackagingInvalidRequirement:
        return str(text).strip()
    return spelled


def _logical_lines(text: str) -> Iterable[str]:
    pending = ""
    for raw in text.splitlines():
        line = raw
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            yield line
    tail = re.sub(r"(^|\s)#.*$", "", pending).strip()
    if tail:
        yield tail


def normalize_python_request(value: object) -> str:
    """Return a Python version request as ``"3.12"`` or ``"3.12.1"``.

    Only CPython 3.x versions are accepted; anything else is an
    :class:`InvalidPythonVersion`.
    """
    if not isinstance(value, str):
        raise InvalidPythonVersion(f"a Python version must be a string, not {type(value).__name__}")
    candidate = value.strip()
    match = _PYTHON_RE.fullmatch(candidate)
    if match is None:
        # "2.7" has the form; it is the major version that is refused.
        other_major = re.fullmatch(r"(\d+)\.\d+(\.\d+)?", candidate)
        if other_major is not None and other_major[1] != "3":
            raise InvalidPythonVersion(
                f"Python {_shorten(candidate)} is not supported: environments run CPython 3 "
                "(give a version such as '3.12' or '3.12.1')"
            )
        raise InvalidPythonVersion(
            f"Python version {_shorten(value)!r} is not of the form '3.12' or '3.12.1'"
        )
    parts = [str(int(match["major"])), str(int(match["minor"]))]
    if match["micro"] is not None:
        parts.append(str(int(match["micro"])))
    return ".".join(parts)


def canonical_requirement(text: str) -> str:
    """Return a form of a (valid) requirement that ignores spelling differences.

    Names are compared per PEP 503, extras are sorted, specifiers are sorted by
    ``packaging``; markers are kept as written by ``packaging``.
    """
    requirement = Requirement(text)
    name = canonicalize_name(requirement.name)
    extras = ",".join(sorted(canonicalize_name(e) for e in requirement.extras))
    result = name + (f"[{extras}]" if extras else "")
    if requirement.url:
        result += f" @ {requirement.url}"
    specifier = ",".join(sorted(str(s) for s in requirement.specifier))
    result += specifier
    if requirement.marker is not None:
        result += f" ; {requirement.marker}"
    return result


def _shorten(value: str, limit: int = 80) -> str:
    return value if len(value) <= limit else value[:limit] + "..."
