"""Reads (``_core.reads``): exports, the runtime env, listing, usage, and not-found for a
missing env.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import pytest

from uv_envs import (
    EnvironmentNotFound,
    EnvironmentNotReady,
    EnvKey,
    EnvManager,
    EnvStatus,
    ExportFormat,
    InvalidInput,
)
from uv_envs._core.reads import with_env_digest

from .conftest import KEY


@pytest.mark.parametrize(
    "read",
    [
        lambda m: m.get(KEY),
        lambda m: m.dependencies(KEY),
        lambda m: m.export(KEY),
        lambda m: m.export(KEY, ExportFormat.REQUIREMENTS_TXT),
        lambda m: m.runtime_env(KEY),
    ],
)
def test_reading_a_missing_env_is_not_found(
    fake_manager: EnvManager, read: Callable[[EnvManager], Any]
) -> None:
    with pytest.raises(EnvironmentNotFound):
        read(fake_manager)
    assert fake_manager.status(KEY).status is EnvStatus.NOT_FOUND


def test_export(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha==1.0", "gamma"])
    exported = fake_manager.export(KEY)
    assert exported.key == KEY
    assert '"alpha==1.0"' in exported.pyproject_toml
    assert "package = false" in exported.pyproject_toml
    assert 'name = "gamma"' in exported.uv_lock
    assert fake_manager.export(KEY, ExportFormat.PROJECT) == exported
    assert fake_manager.export(KEY, "project") == exported
    assert fake_manager.export(KEY, ExportFormat.REQUIREMENTS_TXT) == "alpha==1.0\ngamma==1.0\n"
    assert fake_manager.export(KEY, "requirements.txt") == "alpha==1.0\ngamma==1.0\n"
    with pytest.raises(InvalidInput):
        fake_manager.export(KEY, "setup.py")
    sbom = json.loads(fake_manager.export(KEY, ExportFormat.CYCLONEDX))
    assert [c["name"] for c in sbom["components"]] == ["alpha", "gamma"]
    digest = fake_manager.get(KEY).digest
    assert digest.startswith("sha256:")
    assert sbom["metadata"]["properties"] == [{"name": "uv-envs:env-digest", "value": digest}]


def test_the_digest_joins_an_sboms_metadata_and_non_json_is_refused() -> None:
    with pytest.raises(ValueError, match="Expecting value"):
        with_env_digest("warning: not json", "sha256:0")
    assert json.loads(with_env_digest("{}", "sha256:0"))["metadata"]["properties"] == [
        {"name": "uv-envs:env-digest", "value": "sha256:0"}
    ]


def test_export_as_is_export_with_a_deprecation_warning(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha==1.0", "gamma"])
    with pytest.warns(DeprecationWarning, match="use export"):
        assert fake_manager.export_as(KEY, "requirements.txt") == "alpha==1.0\ngamma==1.0\n"
    with pytest.warns(DeprecationWarning, match="use export"), pytest.raises(InvalidInput):
        fake_manager.export_as(KEY, "project")  # it never took the project files


def test_runtime_env(fake_manager: EnvManager) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    runtime = fake_manager.runtime_env(KEY)
    assert runtime["py_executable"] == runtime["python_path"] == str(environment.python_path)
    assert runtime["env_vars"] == {"VIRTUAL_ENV": str(environment.venv_path)}
    assert runtime["pinned_python_path"] == str(environment.pinned_python_path)
    assert runtime["env_path"] == str(environment.env_path)


def test_list_environments_filters(fake_manager: EnvManager) -> None:
    keys = [
        EnvKey("wf1", "n1", "v1"),
        EnvKey("wf1", "n1", "v2"),
        EnvKey("wf1", "n2", "v1"),
        EnvKey("wf2", "n1", "v1"),
    ]
    for key in keys:
        fake_manager.create(key, packages=["alpha"])

    def listed(*args: str | None) -> set[EnvKey]:
        return {e.key for e in fake_manager.list_environments(*args)}

    assert listed() == set(keys)
    assert listed("wf1") == set(keys[:3])
    assert listed("wf1", "n1") == set(keys[:2])
    assert listed(None, "n1") == {keys[0], keys[1], keys[3]}
    assert listed("wf3") == set()
    assert listed("wf1", "n9") == set()
    assert all(e.status is EnvStatus.READY for e in fake_manager.list_environments())


def test_list_environments_is_sorted_by_key(fake_manager: EnvManager) -> None:
    keys = [EnvKey("wf", "node", v) for v in ("v", "1", "", "B", "a")] + [EnvKey("W", "n")]
    for key in keys:
        fake_manager.create(key, packages=["alpha"])
    assert [e.key for e in fake_manager.list_environments()] == sorted(keys)


def test_usage_counts_the_env_its_shared_venv_and_its_leases(fake_manager: EnvManager) -> None:
    environment = fake_manager.create(KEY, packages=["alpha"])
    usage = fake_manager.usage(KEY)
    assert usage.key == KEY
    assert usage.own_bytes > 0
    assert usage.venv_bytes > 0  # the venv lives in the store, outside the env's folder
    assert usage.last_used >= environment.updated_at
    assert usage.leased_generations == ()
    with fake_manager.lease(KEY) as leased:
        assert fake_manager.usage(KEY).leased_generations == (leased.generation,)
    assert fake_manager.usage(KEY).leased_generations == ()


def test_usage_of_an_unreadable_env_reports_its_folder(fake_manager: EnvManager) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    env_dir = fake_manager._core.services.layout.env_dir(KEY)
    (env_dir / "metadata.json").write_text("{not json")
    usage = fake_manager.usage(KEY)
    assert usage.own_bytes > 0
    assert usage.venv_bytes == 0


def test_usage_of_a_missing_env_is_not_found(fake_manager: EnvManager) -> None:
    with pytest.raises(EnvironmentNotFound):
        fake_manager.usage(KEY)


@pytest.mark.parametrize(
    "read",
    [lambda m: m.dependencies(KEY).declared, lambda m: m.export(KEY).pyproject_toml],
    ids=["dependencies", "export"],
)
def test_reads_racing_deletes_and_changes_answer_or_say_not_found(
    fake_manager: EnvManager, read: Callable[[EnvManager], Any]
) -> None:
    # The trial's ListDeps failed once: the generation it found was deleted before
    # its files were read. 3 readers against 1 thread deleting, re-creating and changing.
    clean = (EnvironmentNotFound, EnvironmentNotReady)
    fake_manager.ensure(KEY, packages=["alpha"])
    done = threading.Event()
    answered: list[object] = []

    def churn() -> None:
        while not done.is_set():
            fake_manager.delete(KEY)
            fake_manager.ensure(KEY, packages=["alpha"])
            fake_manager.add(KEY, ["beta"])

    def reader() -> None:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with contextlib.suppress(*clean):
                answered.append(read(fake_manager))

    with futures.ThreadPoolExecutor(4) as pool:
        churner = pool.submit(churn)
        readers = [pool.submit(reader) for _ in range(3)]
        try:
            for future in readers:
                future.result()  # a read that failed otherwise raises here
        finally:
            done.set()
        churner.result()
    assert answered, "no read got through"
