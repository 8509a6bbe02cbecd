"""Real packages from the public index. Marked ``network``; they run in CI too."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from uv_envs import EnvKey, EnvManager, IndexSettings, ResolutionFailed, Settings
from uv_envs._uv.python import PythonFinder

pytestmark = pytest.mark.network


@pytest.fixture
def public_manager(tmp_path: Path, uv_cache: Path, python_finder: PythonFinder) -> EnvManager:
    return EnvManager(
        Settings(root=tmp_path / "root", cache_dir=uv_cache, index=IndexSettings()),
        python_finder=python_finder,
    )


def test_six_and_requests_from_the_index(public_manager: EnvManager) -> None:
    key = EnvKey("net", "node", "v1")
    environment = public_manager.create(key, packages=["six"])
    public_manager.add(key, ["requests"])
    locked = public_manager.dependencies(key).locked
    assert {"six", "requests", "urllib3", "idna"} <= set(locked)
    completed = subprocess.run(
        [str(environment.python_path), "-c", "import six, requests; print(requests.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr


def test_a_package_that_does_not_exist(public_manager: EnvManager) -> None:
    with pytest.raises(ResolutionFailed) as caught:
        public_manager.create(EnvKey("net", "node", "v2"), packages=["uv-envs-no-such-package-x7q"])
    assert "uv-envs-no-such-package-x7q" in caught.value.stderr
