"""A lock holds packages for every platform; verify asks only for those this platform installs."""

from __future__ import annotations

from pathlib import Path

import attrs

from tests.support.wheelhouse import build_wheel
from uv_envs import EnvKey, EnvManager, Settings
from uv_envs._store.project import required_packages
from uv_envs._uv.python import PythonFinder

LINUX = {"sys_platform": "linux", "python_version": "3.11", "platform_system": "Linux"}


def lock(*packages: dict[str, object]) -> dict[str, object]:
    root = {
        "name": "uv-envs-node",
        "version": "0.0.0",
        "source": {"virtual": "."},
        "dependencies": [{"name": "app"}],
    }
    return {"version": 1, "package": [root, *packages]}


def test_a_package_only_another_platform_needs_is_not_required() -> None:
    document = lock(
        {
            "name": "app",
            "version": "1.0",
            "dependencies": [
                {"name": "colorama", "marker": "sys_platform == 'win32'"},
                {"name": "rich"},
            ],
        },
        {"name": "colorama", "version": "0.4.6", "dependencies": [{"name": "win-only-dep"}]},
        {"name": "win-only-dep", "version": "1.0"},
        {"name": "rich", "version": "13.0", "dependencies": [{"name": "pygments"}]},
        {"name": "pygments", "version": "2.0"},
    )
    assert required_packages(document, LINUX) == {"app", "rich", "pygments"}
    windows = {**LINUX, "sys_platform": "win32", "platform_system": "Windows"}
    assert required_packages(document, windows) == {
        "app",
        "rich",
        "pygments",
        "colorama",
        "win-only-dep",
    }


def test_extras_asked_of_a_package_are_followed_and_a_bad_marker_counts_as_true() -> None:
    document = lock(
        {
            "name": "app",
            "version": "1.0",
            "dependencies": [
                {"name": "httpx", "extra": ["http2"]},
                {"name": "odd", "marker": "not a marker"},
            ],
        },
        {
            "name": "httpx",
            "version": "0.28",
            "optional-dependencies": {"http2": [{"name": "h2"}], "cli": [{"name": "click"}]},
        },
        {"name": "h2", "version": "4.0"},
        {"name": "click", "version": "8.0"},
        {"name": "odd", "version": "1.0"},
    )
    assert required_packages(document, LINUX) == {"app", "httpx", "h2", "odd"}


def test_verify_calls_an_env_healthy_whose_lock_has_another_platforms_package(
    settings: Settings, python_finder: PythonFinder, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_wheel(wheels, "winonly", "1.0")
    build_wheel(wheels, "crossplat", "1.0", ["winonly; sys_platform == 'win32'"])
    index = attrs.evolve(settings.index, find_links=(*settings.index.find_links, str(wheels)))
    manager = EnvManager(attrs.evolve(settings, index=index), python_finder=python_finder)
    key = EnvKey("wf", "markers")
    manager.create(key, packages=["crossplat"])
    assert "winonly" in manager.export(key).uv_lock  # uv locks it for Windows
    report = manager.verify(key)
    assert report.ok, report.problems
