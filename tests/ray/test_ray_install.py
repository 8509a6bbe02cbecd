"""A node install is one core call: every route of uv_envs.ray installs a lock through it.

Runs on the fake uv (no Ray cluster): the node's Ray is stood in for, the core
call is the real one, counted by a wrapper around the node's manager.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pytest

from tests.conftest import FAKE_CATALOG
from tests.server.test_one_core_call import CountingManager
from uv_envs import EnvKey, EnvManager, RayPythonMismatch, Settings
from uv_envs._reports import ProvisionOutcome
from uv_envs._uv.raylink import RayInstall
from uv_envs.testing import CountingExecutor, FakePythonFinder, FakeUvExecutor

if importlib.util.find_spec("ray") is None:
    pytest.skip("needs the [ray] extra", allow_module_level=True)

from uv_envs.ray import LockedSpec, _install

if TYPE_CHECKING:
    from collections.abc import Callable

KEY = EnvKey("wf", "node", "v1")


def _ray_on(python: str) -> Callable[[EnvManager], RayInstall]:
    """A node's Ray running on ``python`` (the real one would link every venv to it)."""
    install = RayInstall("2.0.0", Path("/nowhere"), f"{python}.1", Path("/nowhere/python"))
    return lambda _manager: install


def _node(tmp_path: Path, name: str) -> tuple[CountingManager, CountingExecutor]:
    executor = CountingExecutor(FakeUvExecutor(FAKE_CATALOG))
    manager = EnvManager(
        Settings(root=tmp_path / name, lock_timeout=5),
        executor=executor,
        python_finder=FakePythonFinder(),
    )
    return CountingManager(manager), executor


def _spec(manager: EnvManager) -> LockedSpec:
    export = manager.export(KEY)
    return LockedSpec(export.pyproject_toml, export.uv_lock)


def test_a_node_install_is_one_core_call_whatever_the_node_held(
    tmp_path: Path, fake_manager: EnvManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    spec = _spec(fake_manager)
    monkeypatch.setattr(_install, "cluster_ray", _ray_on(spec.python))
    counting, executor = _node(tmp_path, "node")
    node = cast("EnvManager", counting)

    built = _install.install_exact(node, spec, key=KEY, node_id="n1")
    assert built.outcome is ProvisionOutcome.CREATED
    assert counting.take() == {"install_exact": 1}
    assert counting.inner.export(KEY).uv_lock == spec.uv_lock
    assert executor.count("lock", check=False) == 0  # the lock was checked, never made anew

    again = _install.install_exact(node, spec, key=KEY, node_id="n1")
    assert again.outcome is ProvisionOutcome.REUSED
    assert counting.take() == {"install_exact": 1}

    # The server moved on (an update): the node moves to exactly the new lock, in one call.
    fake_manager.update(KEY, ["alpha==1.0"])
    moved = _spec(fake_manager)
    assert moved.uv_lock != spec.uv_lock
    assert _install.install_exact(node, moved, key=KEY).outcome is ProvisionOutcome.REBUILT
    assert counting.take() == {"install_exact": 1}
    assert counting.inner.export(KEY).uv_lock == moved.uv_lock
    assert counting.inner.dependencies(KEY).locked == moved.locked


def test_the_driver_route_answers_from_the_same_single_call(
    tmp_path: Path, fake_manager: EnvManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_manager.create(KEY, packages=["alpha", "beta"])
    spec = _spec(fake_manager)
    monkeypatch.setattr(_install, "cluster_ray", _ray_on(spec.python))
    counting, _ = _node(tmp_path, "node")
    node_env = _install.ensure_on(cast("EnvManager", counting), spec, node_id="n1")
    assert counting.take() == {"install_exact": 1}
    assert node_env.locked == spec.locked == {"alpha": "2.0", "beta": "1.0"}
    assert Path(node_env.python_path).parent.parent.parent == Path(node_env.env_path)


def test_a_lock_for_another_python_minor_never_reaches_the_core(
    tmp_path: Path, fake_manager: EnvManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    monkeypatch.setattr(_install, "cluster_ray", _ray_on("2.7"))
    counting, _ = _node(tmp_path, "node")
    with pytest.raises(RayPythonMismatch, match=r"node n1's Ray .* lock it with python='2\.7'"):
        _install.install_exact(cast("EnvManager", counting), _spec(fake_manager), node_id="n1")
    assert counting.take() == {}
