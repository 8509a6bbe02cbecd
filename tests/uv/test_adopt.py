"""``EnvManager.adopt``: an env moved to exactly a lock made elsewhere (what each Ray node does)."""

from __future__ import annotations

import re

import pytest

from uv_envs import EnvironmentNotFound, EnvKey, EnvManager, UvError

from .test_real_uv import run_python, tree_fingerprint

SOURCE = EnvKey("adopt", "source")
TARGET = EnvKey("adopt", "target")


def test_adopt_installs_exactly_the_given_lock(manager: EnvManager) -> None:
    manager.create(SOURCE, packages=["alpha==1.0", "gamma"])
    exported = manager.export(SOURCE)
    manager.create(TARGET, packages=["alpha"])  # resolves alpha 2.0 on its own

    result = manager.adopt(TARGET, pyproject_toml=exported.pyproject_toml, uv_lock=exported.uv_lock)

    assert result.environment.generation == 2
    assert manager.export(TARGET).uv_lock == exported.uv_lock
    assert dict(manager.dependencies(TARGET).locked) == {"alpha": "1.0", "gamma": "1.0"}
    assert list(result.environment.spec.packages) == ["alpha==1.0", "gamma"]
    python = str(result.environment.python_path)
    assert run_python(python, "import alpha, gamma; print('ok')") == "ok"


def test_a_lock_that_does_not_install_leaves_the_env_as_it_was(manager: EnvManager) -> None:
    environment = manager.create(TARGET, packages=["alpha"])
    exported = manager.export(TARGET)
    before = tree_fingerprint(environment.env_path)
    # The lock names a release whose wheel is not there: uv must fail, the env stay as it was.
    broken = re.sub(r'path = "[^"]*alpha-2.0', 'path = "/nonexistent/alpha-7.0', exported.uv_lock)
    broken = broken.replace('version = "2.0"', 'version = "7.0"')
    assert broken != exported.uv_lock

    with pytest.raises(UvError):
        manager.adopt(TARGET, pyproject_toml=exported.pyproject_toml, uv_lock=broken)

    assert tree_fingerprint(environment.env_path) == before
    assert manager.export(TARGET).uv_lock == exported.uv_lock


def test_adopt_needs_an_existing_env(manager: EnvManager) -> None:
    with pytest.raises(EnvironmentNotFound):
        manager.adopt(TARGET, pyproject_toml="[project]\n", uv_lock="version = 1\n")
