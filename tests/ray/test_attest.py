"""What a node tells the reconciling round of its copy (issue 30), on a plain root, real uv.

:func:`uv_envs.ray._attest.check_copy` runs on each node in the round: a sound
copy costs the cheap check and names the recorded digest; a damaged one is
hashed (through ``verify``: audited, DAMAGED recorded) and reported, so the
round installs it again.
"""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from uv_envs import EnvKey, EnvManager, EnvStatus, InterpreterFinder, Settings

if importlib.util.find_spec("ray") is None:
    pytest.skip("needs the [ray] extra", allow_module_level=True)

from uv_envs.ray._attest import check_copy

KEY = EnvKey("wf", "attest", "v1")


def test_a_node_reports_a_sound_copy_cheaply_and_a_damaged_one_hashed(
    settings: Settings, python_finder: InterpreterFinder
) -> None:
    manager = EnvManager(settings, python_finder=python_finder)
    created = manager.create(KEY, packages=["beta", "gamma"])
    sound = check_copy(manager, KEY)
    assert (sound.digest, sound.full, sound.damage) == (created.digest, False, ())
    venv = (manager.get(KEY).env_path / ".venv").resolve()
    shutil.rmtree(next(venv.glob("lib/python*/site-packages")) / "gamma")
    damaged = check_copy(manager, KEY)
    assert damaged.full
    assert any("gamma/__init__.py is missing" in line for line in damaged.damage)
    assert damaged.digest != created.digest
    assert manager.get(KEY).status is EnvStatus.DAMAGED
    assert check_copy(manager, KEY).full  # hashed again until it is rebuilt
