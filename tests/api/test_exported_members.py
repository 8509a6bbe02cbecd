"""``__all__`` is exactly the public API, as in httpx's test of the same name."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

import uv_envs
import uv_envs.testing


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


@pytest.mark.parametrize("module", [uv_envs, uv_envs.testing], ids=lambda m: m.__name__)
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
