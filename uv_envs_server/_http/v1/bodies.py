"""The request bodies of the HTTP API, as pydantic models (the id patterns: :mod:`..patterns`).

Requests are strict: unknown fields are refused (a misspelt ``pakages`` is a
422, not a silently empty env), and so is a bool or string for a number, or a
fraction for a whole number. Every constraint the core checks that a schema can
say is in the schema (the id pattern, non-empty package names, the Python
version form, cleanup's "at least one limit"), so a client generated from the
OpenAPI document is not refused for a request the document allows.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

import uv_envs
from uv_envs_server._http.patterns import ID_PATTERN, PYTHON_PATTERN, VERSION_PATTERN

#: How the empty version id is spelt in a path: ``/v1/envs/wf/node/@``.
EMPTY_VERSION = "@"

#: The ``format`` of an export: the core's one list of formats.
ExportFormat = uv_envs.ExportFormat


#: One requirement: not empty, not blank, at most the core's length.
Requirement = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"\S")]


def _whole(value: object) -> object:
    # JSON has one number type: to JSON Schema 5.0 is an integer, so it is taken as 5.
    # A fraction, a bool or a string stays what it is, and strict validation refuses it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: A whole number as JSON Schema's "integer" means it: 5 or 5.0, never 5.5, true or "5".
WholeNumber = Annotated[int, BeforeValidator(_whole)]


class _Body(BaseModel):
    # strict: JSON true is no number, 1.5 no whole number, "1" neither.
    model_config = ConfigDict(extra="forbid", strict=True)


class EnsureBody(_Body):
    """The spec of an env: ``PUT /v1/envs/{w}/{n}/{v}``."""

    packages: list[Requirement] = Field(
        default_factory=list, max_length=uv_envs.MAX_PACKAGES, description="PEP 508 requirements"
    )
    python_version: str | None = Field(
        default=None, pattern=PYTHON_PATTERN, description='for example "3.12"'
    )
    requirements_text: str | None = Field(
        default=None, description="a requirements.txt, in addition to packages"
    )


class CreateBody(EnsureBody):
    """``POST /v1/envs``: the key and the spec."""

    workflow_id: str = Field(pattern=ID_PATTERN)
    node_id: str = Field(pattern=ID_PATTERN)
    version_id: str = Field(default="", pattern=VERSION_PATTERN)


class PackagesBody(_Body):
    """Packages to update (none means all)."""

    packages: list[Requirement] = Field(default_factory=list, max_length=uv_envs.MAX_PACKAGES)


class RemoveBody(_Body):
    """Packages to remove: at least one."""

    packages: list[Requirement] = Field(min_length=1, max_length=uv_envs.MAX_PACKAGES)


class AddBody(PackagesBody):
    """Packages and/or a requirements text to add: at least one requirement in all.

    The schema says so; the core refuses a request that names none.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["packages"], "properties": {"packages": {"minItems": 1}}},
                {
                    "required": ["requirements_text"],
                    "properties": {"requirements_text": {"type": "string", "pattern": r"\S"}},
                },
            ]
        }
    )

    requirements_text: str | None = None


class CleanupBody(_Body):
    """What cleanup deletes; give at least one of the two (the core refuses neither).

    Envs used within the server's minimum idle time are kept by both passes.
    """

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["idle_hours"], "properties": {"idle_hours": {"type": "number"}}},
                {"required": ["max_bytes"], "properties": {"max_bytes": {"type": "integer"}}},
            ]
        }
    )

    idle_hours: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    max_bytes: WholeNumber | None = Field(default=None, ge=0)
