"""Every env works as a Ray worker's py_executable: the link to the cluster's Ray (real uv).

These tests need Ray importable in the test process (``pip install -e '.[ray]'``);
they start no Ray cluster (tests/ray/test_ray.py does).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

from tests.support.wheelhouse import ray_wheels
from uv_envs import (
    EnvKey,
    EnvManager,
    EnvStatus,
    RayImportFailed,
    RayNotAvailable,
    RayPythonMismatch,
    RayVersionConflict,
    Settings,
)
from uv_envs._store.layout import Layout
from uv_envs._store.venvs import venv_id
from uv_envs._uv import raylink as _raylink
from uv_envs._uv.python import Interpreter, PythonFinder

if importlib.util.find_spec("ray") is None:
    if os.environ.get("UV_ENVS_REQUIRE_RAY"):
        raise RuntimeError("UV_ENVS_REQUIRE_RAY is set but ray is not installed")
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

# Imported here, not in a test: importing Ray sets variables in os.environ.
from uv_envs.ray import LockedSpec, RayEnvironmentProvider, ensure_here

pytestmark = pytest.mark.ray

KEY = EnvKey("wf", "node", "v1")


@pytest.fixture(scope="module")
def extra_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ray_wheels(tmp_path_factory.mktemp("ray-wheels"))


@pytest.fixture
def ray_settings(settings: Settings, extra_wheels: Path) -> Settings:
    index = attrs.evolve(settings.index, find_links=(*settings.index.find_links, str(extra_wheels)))
    return attrs.evolve(settings, index=index)


@pytest.fixture
def ray_manager(ray_settings: Settings, python_finder: PythonFinder) -> EnvManager:
    return EnvManager(ray_settings, python_finder=python_finder)


def run_in(python: Path, code: str) -> str:
    completed = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return completed.stdout.strip()


def cluster_ray() -> _raylink.RayInstall:
    install = _raylink.in_process()
    assert install is not None
    return install


def test_an_env_imports_the_clusters_ray_and_its_own_pins_win(ray_manager: EnvManager) -> None:
    env = ray_manager.create(KEY, packages=["alpha", "hypothesis"])
    install = cluster_ray()
    assert env.ray is not None
    assert env.ray.ray_version == install.version
    assert env.ray.error is None
    out = run_in(
        env.python_path,
        "import ray, hypothesis, alpha, sys; "
        "print(ray.__version__, hypothesis.__version__, alpha.__version__, ray.__file__)",
    )
    version, shadow, alpha, ray_file = out.split()
    assert version == install.version
    assert Path(ray_file).is_relative_to(install.site_dir)
    # The env's own hypothesis wins over the cluster's: .pth entries come after site-packages.
    assert shadow == "0.0.1"
    assert alpha == "2.0"
    runtime = env.ray_runtime_env()
    assert runtime == {
        "py_executable": str(env.python_path),
        "env_vars": {"VIRTUAL_ENV": str(env.venv_path)},
    }
    assert env.ray_runtime_env(pinned=True)["py_executable"] == str(env.pinned_python_path)
    assert ray_manager.verify(KEY).ok  # the .pth is no stray file to verify


def test_an_env_that_breaks_ray_is_refused_at_create(ray_manager: EnvManager) -> None:
    with pytest.raises(RayImportFailed) as caught:
        ray_manager.create(KEY, packages=["msgpack"])
    assert "this msgpack is broken" in caught.value.stderr
    assert ray_manager.status(KEY).status is EnvStatus.NOT_FOUND  # rolled back
    assert not any(Layout(ray_manager.settings.root).store_dir.glob("*/.complete"))


def test_an_env_pinning_another_ray_is_refused_before_installing(ray_manager: EnvManager) -> None:
    with pytest.raises(RayVersionConflict, match=r"locks ray 0\.0\.1"):
        ray_manager.create(KEY, packages=["ray==0.0.1"])
    assert ray_manager.status(KEY).status is EnvStatus.NOT_FOUND
    assert not Layout(ray_manager.settings.root).store_dir.exists() or not any(
        Layout(ray_manager.settings.root).store_dir.iterdir()
    )


def test_an_env_on_another_python_is_built_but_not_handed_to_ray(
    ray_manager: EnvManager, other_python: str
) -> None:
    env = ray_manager.create(KEY, packages=["alpha"], python=other_python)
    assert env.status is EnvStatus.READY
    assert run_in(env.python_path, "import alpha; print(alpha.__version__)") == "2.0"
    assert env.ray is not None
    assert env.ray.error is not None
    with pytest.raises(RayPythonMismatch, match="runs Python"):
        env.ray_runtime_env()
    env.runtime_env()  # the subprocess form still works
    assert ray_manager.get(KEY).ray == env.ray  # recorded in metadata.json


def test_off_builds_plain_envs_in_other_store_entries(
    ray_settings: Settings, python_finder: PythonFinder
) -> None:
    linked = EnvManager(ray_settings, python_finder=python_finder)
    plain = EnvManager(attrs.evolve(ray_settings, ray="off"), python_finder=python_finder)
    a = linked.create(EnvKey("wf", "a"), packages=["alpha"])
    b = plain.create(EnvKey("wf", "b"), packages=["alpha"])
    assert b.ray is None
    assert a.venv_path.resolve() != b.venv_path.resolve()  # another store entry
    site = "lib/python{}.{}/site-packages".format(*sys.version_info[:2])
    assert (a.venv_path.resolve() / site / _raylink.PTH_NAME).is_file()
    assert not (b.venv_path.resolve() / site / _raylink.PTH_NAME).exists()
    b.ray_runtime_env()  # unchecked: linking is off, the caller knows its env


def test_the_store_id_covers_the_ray_link() -> None:
    lock = 'version = 1\n[[package]]\nname = "alpha"\nversion = "2.0"\n'
    interpreter = Interpreter(Path(sys.executable), "3.11.7")
    plain = venv_id(lock, interpreter, compile_bytecode=False)
    one = venv_id(lock, interpreter, compile_bytecode=False, ray_link={"ray": "2.60.0"})
    other = venv_id(lock, interpreter, compile_bytecode=False, ray_link={"ray": "2.61.0"})
    assert len({plain, one, other}) == 3


def test_sync_builds_a_linked_private_venv(ray_manager: EnvManager) -> None:
    ray_manager.create(KEY, packages=["alpha"])
    result = ray_manager.sync(KEY)
    layout = Layout(ray_manager.settings.root)
    venv = layout.generation_dir(result.environment.env_path, 2) / ".venv"
    assert not venv.is_symlink()
    assert run_in(venv / "bin" / "python", "import ray; print('ok')") == "ok"


def test_the_clusters_python_can_be_named(
    ray_settings: Settings, python_finder: PythonFinder
) -> None:
    named = EnvManager(attrs.evolve(ray_settings, ray=sys.executable), python_finder=python_finder)
    env = named.create(KEY, packages=["alpha"])
    assert env.ray is not None
    assert env.ray.ray_version == cluster_ray().version
    assert run_in(env.python_path, "import ray; print('ok')") == "ok"


def test_a_named_python_without_ray_is_refused(
    ray_settings: Settings, python_finder: PythonFinder, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    named = EnvManager(
        attrs.evolve(ray_settings, ray=str(bare / "bin" / "python")), python_finder=python_finder
    )
    with pytest.raises(RayNotAvailable, match="cannot import ray"):
        named.create(KEY, packages=["alpha"])
    assert named.status(KEY).status is EnvStatus.NOT_FOUND


def test_settings_read_uv_envs_ray(tmp_path: Path) -> None:
    assert Settings(root=tmp_path).ray == "auto"
    assert Settings.from_env({"UV_ENVS_ROOT": str(tmp_path), "UV_ENVS_RAY": "off"}).ray == "off"
    named = Settings.from_env({"UV_ENVS_ROOT": str(tmp_path), "UV_ENVS_RAY": "/opt/py/bin/python"})
    assert named.ray == "/opt/py/bin/python"


def test_without_ray_in_the_process_nothing_is_linked(
    ray_settings: Settings, python_finder: PythonFinder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("uv_envs._uv.raylink.in_process", lambda: None)
    env = EnvManager(ray_settings, python_finder=python_finder).create(KEY, packages=["alpha"])
    assert env.ray is None


def test_the_server_flag_names_the_ray(tmp_path: Path) -> None:
    from uv_envs.cli_options import settings_from_options
    from uv_envs_server._cli import _parser

    args = _parser().parse_args(["--root", str(tmp_path), "--ray", "off"])
    assert settings_from_options(args, {}).ray == "off"
    assert settings_from_options(_parser().parse_args(["--root", str(tmp_path)]), {}).ray == "auto"


def test_the_cli_takes_ray_before_or_after_the_subcommand(tmp_path: Path) -> None:
    from uv_envs._cli.main import _parser as build_parser
    from uv_envs.cli_options import settings_from_options

    for argv in (
        ["--ray", "off", "--root", str(tmp_path), "list"],
        ["--root", str(tmp_path), "list", "--ray", "off"],
    ):
        assert settings_from_options(build_parser().parse_args(argv), {}).ray == "off"


def test_a_spec_on_another_python_is_refused_for_the_cluster(
    ray_manager: EnvManager, other_python: str, tmp_path: Path
) -> None:
    spec = LockedSpec.resolve(["alpha"], python=other_python, manager=ray_manager)
    with pytest.raises(RayPythonMismatch, match="lock it with python="):
        ensure_here(spec, root=str(tmp_path / "node"))
    provider = RayEnvironmentProvider(ray_manager)
    config = {
        "workflow_id": "wf",
        "node_id": "n",
        "packages": ["alpha"],
        "python_version": other_python,
    }
    with pytest.raises(RayPythonMismatch):
        provider.create_environment("v", config)  # refused before any Ray task
