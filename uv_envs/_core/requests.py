"""Turns what a caller asked for into a validated request, before anything is written."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from uv_envs._models import EnvSpec
from uv_envs._settings import Settings
from uv_envs._store.project import spec_hash
from uv_envs._uv.python import Interpreter, InterpreterFinder
from uv_envs._validation import (
    normalize_python_request,
    parse_requirements,
    parse_requirements_text,
)


@attrs.frozen
class ProvisionRequest:
    """A validated create/ensure request."""

    spec: EnvSpec
    digest: str
    interpreter: Interpreter
    refresh: bool = False


@attrs.frozen
class Asked:
    """What a caller asked create, ensure or provision for, as given (see :func:`request_for`)."""

    packages: Iterable[str] = ()
    requirements_text: str | bytes | None = None
    python: str | None = None
    refresh: bool = False


@attrs.frozen
class Requirements:
    """Validated requirements, and the requirements text when uv must read it whole."""

    packages: tuple[str, ...]
    text: str | None = None

    @property
    def empty(self) -> bool:
        return not self.packages and self.text is None


def parse_requested(
    settings: Settings, packages: Iterable[str], requirements_text: str | bytes | None
) -> Requirements:
    """Validated requirements from both sources; raises :class:`~uv_envs.InvalidInput`."""
    allow_direct = settings.allow_direct_references
    requirements = parse_requirements(packages, allow_direct_references=allow_direct)
    if not requirements_text:
        return Requirements(requirements)
    from_text, has_options = parse_requirements_text(
        requirements_text,
        allow_options=settings.allow_requirements_options,
        allow_direct_references=allow_direct,
    )
    text = None
    if has_options:
        raw = requirements_text
        text = raw.decode() if isinstance(raw, bytes) else raw
    return Requirements(requirements + from_text, text)


def provision_request(
    settings: Settings,
    finder: InterpreterFinder,
    requirements: Requirements,
    python: str | None,
    *,
    refresh: bool = False,
) -> ProvisionRequest:
    """The request for a spec, with its interpreter found and its hash computed."""
    interpreter = finder.find(python or settings.default_python)
    spec = EnvSpec(
        packages=requirements.packages,
        python=normalize_python_request(python or settings.default_python),
        requirements_text=requirements.text,
    )
    return ProvisionRequest(spec, spec_hash(spec, settings.index), interpreter, refresh)


def request_for(settings: Settings, finder: InterpreterFinder, asked: Asked) -> ProvisionRequest:
    """What a caller asked, validated, its interpreter found; raises before anything is written."""
    requested = parse_requested(settings, asked.packages, asked.requirements_text)
    return provision_request(settings, finder, requested, asked.python, refresh=asked.refresh)


def spec_differences(there: EnvSpec, here: EnvSpec) -> tuple[str, ...]:
    """What differs between an env's spec and the one asked, one short phrase each."""
    found: list[str] = []
    added = sorted(set(here.packages) - set(there.packages))
    dropped = sorted(set(there.packages) - set(here.packages))
    if added or dropped:
        changes = [f"+{p}" for p in added] + [f"-{p}" for p in dropped]
        found.append("packages: " + ", ".join(changes))
    if there.python != here.python:

        def shown(python: str) -> str:
            return repr(python) if python else "not given"

        found.append(f"python: {shown(there.python)} there, {shown(here.python)} here")
    if there.requirements_text != here.requirements_text:
        found.append("the requirements text differs")
    return tuple(found)


def conflict(key: object, there: EnvSpec, here: EnvSpec) -> tuple[str, tuple[str, ...]]:
    """The headline of a create refused for another spec, and what differs."""
    differences = spec_differences(there, here)
    # The same spec asked but another digest: the default Python was resolved anew.
    what = "; ".join(differences) or "the Python it resolves to differs"
    return f"environment {key} exists with another spec ({what})", differences
