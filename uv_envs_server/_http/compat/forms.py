"""The original service's request bodies read into package lists: form fields and uploaded files.

Its client posts forms (``data=``): a list is a repeated ``packages`` field,
and one value written ``a,b`` (no spaces) names two packages. A
``requirements_file`` upload contributes its non-blank lines that are not
``#`` comments. What comes out is checked by the core like any other request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import uv_envs

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

#: Characters a specifier clause starts with: ``a>=1,<2`` is one requirement, not two.
_SPECIFIER_START: Final = frozenset("<>=!~")

_OPENING: Final = frozenset("[(")
_CLOSING: Final = frozenset("])")


def form_packages(values: Sequence[str] | None) -> list[str]:
    """The packages a form names: repeated fields as given, one ``a,b`` value split in two.

    Blank fields (a form left empty) name nothing. Only a single value with
    no whitespace is split, at the commas that start a new requirement: the
    commas of a specifier list (``a>=1,<2``) or of extras (``a[x,y]``) stay.
    """
    named = [value.strip() for value in values or () if value.strip()]
    if len(named) == 1 and not any(char.isspace() for char in named[0]):
        return _split_requirements(named[0])
    return named


def _split_requirements(value: str) -> list[str]:
    pieces: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(value):
        if char in _OPENING:
            depth += 1
        elif char in _CLOSING:
            depth = max(depth - 1, 0)
        elif char == "," and depth == 0:
            pieces.append(value[start:index])
            start = index + 1
    pieces.append(value[start:])
    requirements: list[str] = []
    for piece in pieces:
        if requirements and piece[:1] in _SPECIFIER_START:
            requirements[-1] = f"{requirements[-1]},{piece}"  # the clause of the one before
        elif piece:
            requirements.append(piece)
    return requirements


def requirements_file_lines(content: bytes, filename: str | None) -> list[str]:
    """The requirements an uploaded file lists: its non-blank, non-``#`` lines.

    A comment after a requirement (``numpy  # pinned later``) is dropped as
    pip drops it; anything else on a line is a requirement the core checks.

    Raises:
        InvalidInput: the file is not UTF-8 text.

    """
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        label = filename or "requirements_file"
        msg = f"{label} is not UTF-8 text: {exc.reason} at byte {exc.start}"
        raise uv_envs.InvalidInput(msg) from exc
    return list(_requirement_lines(text.splitlines()))


def _requirement_lines(lines: Iterable[str]) -> Iterable[str]:
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        for marker in (" #", "\t#"):
            stripped = stripped.split(marker, 1)[0].rstrip()
        yield stripped


def requested_packages(
    values: Sequence[str] | None, file_lines: Sequence[str], *, required: bool
) -> list[str]:
    """The form's packages and the file's, in that order.

    Raises:
        InvalidInput: ``required`` and neither names a package.

    """
    packages = [*form_packages(values), *file_lines]
    if required and not packages:
        msg = "name at least one package: a 'packages' field or a 'requirements_file'"
        raise uv_envs.InvalidInput(msg)
    return packages


def document_compat_forms(schema: dict[str, Any]) -> dict[str, Any]:
    """Say in the schema what a form can carry (in place).

    A form has no null: a field left out is how a client says "none", so the
    ``null`` FastAPI lists for an optional field is dropped. And a form has no
    arrays: ``packages`` named once is one plain field, so it is a list or a string.
    """
    components = schema.get("components", {}).get("schemas", {})
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            content = operation.get("requestBody", {}).get("content", {})
            for media_type in _FORM_MEDIA_TYPES & set(content):
                ref = content[media_type].get("schema", {}).get("$ref", "")
                body = components.get(ref.rsplit("/", 1)[-1], {})
                for name, field in body.get("properties", {}).items():
                    _without_null(field)
                    if name == "packages":
                        one = {"type": "string"}
                        field["anyOf"] = [{k: field.pop(k) for k in ("type", "items")}, one]
    return schema


#: The request bodies a form is sent as.
_FORM_MEDIA_TYPES: Final = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})


def _without_null(field: dict[str, Any]) -> None:
    choices = [choice for choice in field.pop("anyOf", ()) if choice.get("type") != "null"]
    if len(choices) == 1:
        field.update(choices[0])
    elif choices:
        field["anyOf"] = choices
