"""add, update and remove on real uv: the old generation stays whole, only the delta is new.

The new generation's venv is installed from uv's cache, which hard-links each
file: a package the change leaves alone is the same inode in the old and the
new venv, so the bytes written for a change are the delta's only.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from uv_envs import Environment, EnvKey, EnvManager

KEY = EnvKey("wf", "changes")


def site_packages(venv: Path) -> Path:
    (site,) = venv.resolve().glob("lib/python*/site-packages")
    return site


def module_inode(venv: Path, name: str) -> int:
    return (site_packages(venv) / name / "__init__.py").stat().st_ino


def imports(python: Path, name: str) -> str:
    code = (
        "import importlib.util as u, sys\n"
        f"spec = u.find_spec({name!r})\n"
        f"print(__import__({name!r}).__version__ if spec else 'missing')"
    )
    completed = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return completed.stdout.strip()


def old_venv(environment: Environment) -> Path:
    return environment.env_path / "gens" / str(environment.generation) / ".venv"


def test_an_add_keeps_the_pins_and_shares_every_unchanged_file(manager: EnvManager) -> None:
    first = manager.create(KEY, packages=["alpha<2", "gamma"])
    gamma = module_inode(first.venv_path, "gamma")
    alpha = module_inode(first.venv_path, "alpha")

    # beta accepts alpha 2.0 too: resolving against the current lock keeps alpha at 1.0.
    added = manager.add(KEY, ["beta"]).environment

    new_venv = old_venv(added)
    assert manager.dependencies(KEY).locked == {"alpha": "1.0", "beta": "1.0", "gamma": "1.0"}
    assert module_inode(new_venv, "gamma") == gamma
    assert module_inode(new_venv, "alpha") == alpha
    assert module_inode(new_venv, "beta") not in {gamma, alpha}
    # The generation a running process may use is untouched.
    assert imports(first.pinned_python_path, "beta") == "missing"
    assert imports(first.pinned_python_path, "alpha") == "1.0"
    assert imports(added.python_path, "beta") == "1.0"


def test_update_and_remove_leave_the_old_generation_as_it_was(manager: EnvManager) -> None:
    first = manager.create(KEY, packages=["alpha==1.0", "gamma"])
    gamma = module_inode(first.venv_path, "gamma")

    updated = manager.update(KEY, ["alpha==2.0"]).environment
    assert module_inode(old_venv(updated), "gamma") == gamma
    assert imports(updated.python_path, "alpha") == "2.0"
    assert imports(first.pinned_python_path, "alpha") == "1.0"

    removed = manager.remove(KEY, ["gamma"]).environment
    assert imports(removed.python_path, "gamma") == "missing"
    assert module_inode(old_venv(removed), "alpha") == module_inode(old_venv(updated), "alpha")
    assert imports(updated.pinned_python_path, "gamma") == "1.0"
    assert imports(first.pinned_python_path, "gamma") == "1.0"
    # Each switch moved ``current`` in one step: the env is the last generation.
    assert removed.generation == 3
    assert (removed.env_path / "current").resolve() == (removed.env_path / "gens" / "3").resolve()
