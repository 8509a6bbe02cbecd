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


@attrs.frozen
class Requests:
    """Turns what a create, an ensure or a provision was asked into its request."""

    settings: Settings
    finder: InterpreterFinder

    def of(
        self,
        packages: Iterable[str],
        requirements_text: str | bytes | None,
        python: str | None,
        *,
        refresh: bool = False,
    ) -> ProvisionRequest:
        """The request, validated, its interpreter found; raises :class:`~uv_envs.InvalidInput`."""
        requested = parse_requested(self.settings, packages, requirements_text)
        return provision_request(self.settings, self.finder, requested, python, refresh=refresh)
