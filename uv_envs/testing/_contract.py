"""The provider contract: what WTB relies on from every ``IEnvironmentProvider``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uv_envs._provider import IEnvironmentProvider


def check_provider_contract(
    provider: IEnvironmentProvider, config: Mapping[str, Any], variant_id: str = "variant-1"
) -> None:
    """Exercise an ``IEnvironmentProvider`` the way WTB does; raise AssertionError on a deviation.

    ``config`` must name an env that does not exist yet and whose packages
    resolve. Run it against every provider implementation.
    """
    created = provider.create_environment(variant_id, dict(config))
    for field in (
        "type",
        "workflow_id",
        "node_id",
        "version_id",
        "env_path",
        "python_path",
        "venv_path",
        "python_version",
        "status",
    ):
        assert field in created, f"create_environment result lacks {field!r}"
    assert created["status"] == "READY", created
    assert created["python_path"] == str(Path(created["env_path"]) / ".venv" / "bin" / "python")
    assert created["workflow_id"] == config["workflow_id"]
    again = provider.create_environment(variant_id, dict(config))
    assert again["env_path"] == created["env_path"], "create_environment is not idempotent"
    runtime = provider.get_runtime_env(variant_id)
    assert runtime is not None, "get_runtime_env returned None for a created variant"
    for field in ("env_path", "python_path", "venv_path", "env_vars", "py_executable"):
        assert field in runtime, f"get_runtime_env result lacks {field!r}"
    assert runtime["env_vars"]["VIRTUAL_ENV"] == runtime["venv_path"]
    assert runtime["py_executable"] == created["python_path"]
    assert provider.get_runtime_env("no-such-variant") is None
    provider.cleanup_environment(variant_id)
    assert provider.get_runtime_env(variant_id) is None
    provider.cleanup_environment(variant_id)  # a second cleanup is a no-op
    assert not Path(created["env_path"]).exists(), "cleanup_environment left the env on disk"
