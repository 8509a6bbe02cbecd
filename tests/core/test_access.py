"""An env's lock (``_core.access``): a busy env times out as EnvironmentBusy naming it,
and blocks neither reads nor other envs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from uv_envs import EnvironmentBusy, EnvKey, EnvManager, EnvStatus
from uv_envs.testing import FakeUvExecutor

from .conftest import KEY, held_in_another_thread, make_manager, snapshot


@pytest.mark.parametrize(
    "operation",
    [
        lambda m: m.add(KEY, ["gamma"]),
        lambda m: m.ensure(KEY, packages=["gamma"]),
        lambda m: m.create(KEY, packages=["alpha"]),
        lambda m: m.sync(KEY),
        lambda m: m.delete(KEY),
    ],
)
def test_a_lock_timeout_is_environment_busy_naming_the_env(
    tmp_path: Path, fake_uv: FakeUvExecutor, operation: Callable[[EnvManager], Any]
) -> None:
    manager = make_manager(tmp_path, fake_uv, lock_timeout=0.2)
    environment = manager.create(KEY, packages=["alpha"])
    before = snapshot(environment.env_path)
    calls = len(fake_uv.calls)

    with held_in_another_thread(manager._core.services.layout.lock_file(KEY)):
        started = time.monotonic()
        with pytest.raises(EnvironmentBusy) as caught:
            operation(manager)
        assert time.monotonic() - started < 4

    assert isinstance(caught.value, TimeoutError)
    assert str(KEY) in str(caught.value)
    assert len(fake_uv.calls) == calls
    assert snapshot(environment.env_path) == before
    operation(manager)  # free again


def test_other_envs_are_not_blocked_by_a_busy_one(tmp_path: Path, fake_uv: FakeUvExecutor) -> None:
    manager = make_manager(tmp_path, fake_uv, lock_timeout=0.2)
    manager.create(KEY, packages=["alpha"])
    other = EnvKey("ml_pipeline", "rag", "v2")
    with held_in_another_thread(manager._core.services.layout.lock_file(KEY)):
        assert manager.create(other, packages=["alpha"]).status is EnvStatus.READY
        assert manager.status(KEY).status is EnvStatus.READY  # reading needs no lock
