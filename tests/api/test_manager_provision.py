"""``EnvManager.provision``: create or ensure in one call that says what it did."""

from __future__ import annotations

import pytest

import uv_envs

KEY = uv_envs.EnvKey("wf", "node", "v1")


def test_provision_says_whether_it_created_reused_or_rebuilt(
    fake_manager: uv_envs.EnvManager,
) -> None:
    first = fake_manager.provision(KEY, packages=["alpha"])
    assert first.outcome == "CREATED"
    assert first.created
    assert first.environment.status is uv_envs.EnvStatus.READY
    assert first.pyproject_toml == fake_manager.export(KEY).pyproject_toml
    assert '"alpha"' in first.pyproject_toml

    again = fake_manager.provision(KEY, packages=["alpha"])
    assert again.outcome == "REUSED"
    assert not again.created
    assert again.environment == first.environment

    moved = fake_manager.provision(KEY, packages=["beta"], replace=True)
    assert moved.outcome == "REBUILT"
    assert not moved.created
    assert moved.environment.generation == first.environment.generation + 1
    assert '"beta"' in moved.pyproject_toml
    assert moved.pyproject_toml == fake_manager.export(KEY).pyproject_toml


def test_provision_without_replace_refuses_another_spec_as_create_does(
    fake_manager: uv_envs.EnvManager,
) -> None:
    fake_manager.provision(KEY, packages=["alpha"])
    with pytest.raises(uv_envs.EnvironmentAlreadyExists, match="another spec"):
        fake_manager.provision(KEY, packages=["beta"])
    assert fake_manager.get(KEY).spec.packages == ("alpha",)


def test_provision_after_a_delete_creates_again(fake_manager: uv_envs.EnvManager) -> None:
    fake_manager.provision(KEY, packages=["alpha"])
    fake_manager.delete(KEY)
    assert fake_manager.provision(KEY, packages=["alpha"], replace=True).created
