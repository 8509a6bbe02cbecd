"""The provider contract, run against the in-process provider on real uv."""

from __future__ import annotations

import pytest

from uv_envs import EnvManager, IEnvironmentProvider, InvalidIdentifier, LocalEnvironmentProvider
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
