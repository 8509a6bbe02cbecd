"""The provider contract, run against the in-process provider on real uv."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from uv_envs import (
    EnvKey,
    EnvManager,
    IEnvironmentProvider,
    InvalidIdentifier,
    LocalEnvironmentProvider,
    VariantRegistry,
)
from uv_envs.testing import check_provider_contract


def test_local_provider_satisfies_the_contract(manager: EnvManager) -> None:
    provider = LocalEnvironmentProvider(manager)
    assert isinstance(provider, IEnvironmentProvider)
    check_provider_contract(
        provider,
        {"workflow_id": "ml_pipeline", "node_id": "rag", "version_id": "v1", "packages": ["alpha"]},
    )


def test_local_provider_passes_the_python_version(manager: EnvManager, other_python: str) -> None:
    provider = LocalEnvironmentProvider(manager)
    created = provider.create_environment(
        "v",
        {
            "workflow_id": "wf",
            "node_id": "n",
            "packages": ["alpha"],
            "python_version": other_python,
        },
    )
    assert created["python_version"].startswith(other_python + ".")


def test_bad_config_is_rejected(manager: EnvManager) -> None:
    provider = LocalEnvironmentProvider(manager)
    with pytest.raises(InvalidIdentifier):
        provider.create_environment("v", {"workflow_id": "../x", "node_id": "n"})


def test_variant_registry_remembers_gets_and_forgets() -> None:
    registry = VariantRegistry()
    first, second = EnvKey("wf", "node", "v1"), EnvKey("wf", "node", "v2")
    assert registry.get("variant") is None
    registry.remember("variant", first)
    registry.remember("variant", second)  # a new create of the variant replaces its key
    assert registry.get("variant") == second
    assert registry.forget("variant") == second
    assert registry.forget("variant") is None
    assert registry.get("variant") is None


def test_variant_registry_is_safe_across_threads() -> None:
    registry = VariantRegistry()
    keys = [EnvKey("wf", f"node{i}") for i in range(400)]

    def churn(offset: int) -> None:
        for index in range(offset, len(keys), 4):
            registry.remember(f"v{index}", keys[index])
            assert registry.get(f"v{index}") == keys[index]
            if index % 2:
                assert registry.forget(f"v{index}") == keys[index]

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(churn, range(4)))
    for index, key in enumerate(keys):
        assert registry.get(f"v{index}") == (None if index % 2 else key)
