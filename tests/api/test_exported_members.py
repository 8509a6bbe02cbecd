"""``__all__`` is exactly the public API, as in httpx's test of the same name."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import uv_envs
import uv_envs.errors
import uv_envs.testing

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_all_of_uv_envs_is_its_public_names() -> None:
    # As httpx does: every public name bound in the package namespace is in __all__ and
    # nothing else is. Submodules (uv_envs.testing once imported) are not names of __init__.
    public = {
        name
        for name, value in vars(uv_envs).items()
        if (not name.startswith("_") or name == "__version__") and not isinstance(value, ModuleType)
    }
    assert set(uv_envs.__all__) == public


def test_all_of_uv_envs_testing_is_its_public_names() -> None:
    # uv_envs.testing re-exports the fakes its private modules define.
    defined = {
        name
        for name, value in vars(uv_envs.testing).items()
        if not name.startswith("_")
        and str(getattr(value, "__module__", "")).startswith(uv_envs.testing.__name__ + ".")
    }
    assert set(uv_envs.testing.__all__) == defined


def documented(section: str) -> list[str]:
    """The names listed (``- `Name```) in ``section`` of docs/api.md, up to the next one as deep."""
    text = API_DOC.read_text()
    heading = re.search(rf"^(#+) {re.escape(section)}$", text, re.MULTILINE)
    assert heading is not None, section
    level = len(heading.group(1))
    rest = text[heading.end() :]
    end = re.search(rf"^#{{1,{level}}} ", rest, re.MULTILINE)
    return re.findall(r"^- `(\w+)`", rest[: end.start() if end else None], re.MULTILINE)


def test_the_api_page_lists_exactly_the_public_names_each_once() -> None:
    listed = documented("Public names")
    assert sorted(listed) == sorted(uv_envs.__all__)


def test_uv_envs_errors_is_every_error_and_the_api_page_lists_them() -> None:
    errors = {
        name
        for name in uv_envs.__all__
        if inspect.isclass(getattr(uv_envs, name))
        and issubclass(getattr(uv_envs, name), uv_envs.UvEnvsError)
    }
    assert set(uv_envs.errors.__all__) == errors
    assert sorted(documented("Errors")) == sorted(errors)
    for name in errors:
        assert getattr(uv_envs.errors, name) is getattr(uv_envs, name)


@pytest.mark.parametrize(
    "module", [uv_envs, uv_envs.errors, uv_envs.testing], ids=lambda m: m.__name__
)
def test_every_name_in_all_exists_once(module: ModuleType) -> None:
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), name


def test_public_classes_claim_the_package_as_their_home_or_a_private_module() -> None:
    for name in uv_envs.__all__:
        value = getattr(uv_envs, name)
        if inspect.isclass(value):
            assert value.__module__.startswith("uv_envs."), (name, value.__module__)
            assert value.__module__.split(".")[1].startswith("_"), (name, value.__module__)


@pytest.mark.parametrize(
    "name",
    [
        "converter",
        "default_root",
        "environment_dict",
        "JsonMetadataRepository",
        "MetadataRepository",
        "PythonFinder",
        "SqliteAuditLog",
    ],
)
def test_names_of_0_1_still_import_with_a_deprecation_warning(name: str) -> None:
    with pytest.warns(DeprecationWarning, match=f"uv_envs.{name} is deprecated"):
        assert getattr(uv_envs, name) is not None
    assert name not in uv_envs.__all__


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = uv_envs.nope


def test_version_is_a_string() -> None:
    assert isinstance(uv_envs.__version__, str)
    assert uv_envs.__version__
