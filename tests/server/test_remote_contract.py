"""One contract, two wires: every RemoteEnvManager behaviour checked over gRPC and over HTTP.

Each test runs once per wire against a real server on a loopback port over the
same fake-uv manager, and compares what the client answers with what the
in-process manager says, so the two clients cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import uv_envs
from uv_envs_server import EnvManagerClient, HttpEnvClient, RemoteEnvManager

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from uv_envs.testing import FakeUvExecutor

    from .conftest import HttpServe, Serve

KEY = uv_envs.EnvKey("wf", "node", "v1")
MISSING = uv_envs.EnvKey("wf", "nobody")


@pytest.fixture(params=["grpc", "http"])
def remote(
    request: pytest.FixtureRequest,
    fake_manager: uv_envs.EnvManager,
    serve: Serve,
    http_serve: HttpServe,
) -> Iterator[RemoteEnvManager]:
    """A client of one wire, to a server over ``fake_manager``."""
    client: EnvManagerClient | HttpEnvClient
    if request.param == "grpc":
        client = EnvManagerClient(serve(fake_manager), timeout=30)
    else:
        client = HttpEnvClient(http_serve(fake_manager).url, timeout=30)
    with client:
        yield client


def _seen(environment: uv_envs.Environment) -> dict[str, Any]:
    # What both wires carry of an env (HTTP sends no interpreter path or retired list).
    return {
        "key": environment.key,
        "env_path": environment.env_path,
        "status": environment.status,
        "spec": environment.spec,
        "spec_hash": environment.spec_hash,
        "python_version": environment.python_version,
        "generation": environment.generation,
        "created_at": environment.created_at,
        "updated_at": environment.updated_at,
        "error": environment.error,
        "runtime_env": environment.runtime_env(),
    }


def test_both_clients_implement_the_protocol(remote: RemoteEnvManager) -> None:
    assert isinstance(remote, RemoteEnvManager)


def _methods(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") and callable(getattr(cls, name))}


def test_both_clients_offer_the_contract_and_nothing_else() -> None:
    # One surface: what either client adds beyond the contract is a second vocabulary.
    assert _methods(EnvManagerClient) == _methods(HttpEnvClient) == _methods(RemoteEnvManager)


def test_health_names_the_status_on_both_wires(remote: RemoteEnvManager) -> None:
    assert remote.health() == "SERVING"


def test_ensure_and_get_answer_the_env_the_core_holds(
    remote: RemoteEnvManager, fake_manager: uv_envs.EnvManager
) -> None:
    created = remote.ensure(KEY, ["alpha"])
    assert created.status is uv_envs.EnvStatus.READY
    assert created.packages == ("alpha",)
    assert _seen(created) == _seen(fake_manager.get(KEY))
    assert _seen(remote.get(KEY)) == _seen(created)
    again = remote.ensure(KEY, ["alpha"])  # retry-safe: the same env, the same generation
    assert again.generation == created.generation
    moved = remote.ensure(KEY, ["alpha", "beta"])  # another spec: a new generation
    assert moved.generation > created.generation
    assert moved.packages == ("alpha", "beta")
    assert _seen(remote.get(KEY)) == _seen(fake_manager.get(KEY))


def test_dependencies_add_update_remove_and_sync(
    remote: RemoteEnvManager, fake_manager: uv_envs.EnvManager
) -> None:
    remote.ensure(KEY, ["alpha<2"])
    assert remote.dependencies(KEY) == fake_manager.dependencies(KEY)
    added = remote.add(KEY, ["gamma"])
    assert added.operation == "add"
    assert added.exit_code == 0
    assert "gamma" in added.environment.packages
    assert _seen(added.environment) == _seen(fake_manager.get(KEY))
    assert remote.dependencies(KEY).declared == ("alpha<2", "gamma")
    assert remote.update(KEY).operation == "update"
    removed = remote.remove(KEY, ["gamma"])
    assert removed.operation == "remove"
    assert "gamma" not in removed.environment.packages
    assert remote.dependencies(KEY) == fake_manager.dependencies(KEY)
    synced = remote.sync(KEY)
    assert synced.operation == "sync"
    assert synced.environment.status is uv_envs.EnvStatus.READY


def test_a_uv_failure_is_a_uv_error_with_its_output_and_changes_nothing(
    remote: RemoteEnvManager, fake_manager: uv_envs.EnvManager, fake_uv: FakeUvExecutor
) -> None:
    remote.ensure(KEY, ["alpha"])
    before = fake_manager.dependencies(KEY)
    fake_uv.fail_next("add", stderr="error: no gamma today")
    with pytest.raises(uv_envs.UvError) as info:
        remote.add(KEY, ["gamma"])
    assert "no gamma today" in info.value.stderr
    assert remote.dependencies(KEY) == before


def test_export_answers_the_project_files(
    remote: RemoteEnvManager, fake_manager: uv_envs.EnvManager
) -> None:
    remote.ensure(KEY, ["alpha"])
    exported = remote.export(KEY)
    assert exported == fake_manager.export(KEY)
    assert "alpha" in exported.pyproject_toml
    assert exported.uv_lock


def test_delete_says_deleted_then_not_found(
    remote: RemoteEnvManager, fake_manager: uv_envs.EnvManager
) -> None:
    environment = remote.ensure(KEY, ["alpha"])
    assert remote.delete(KEY) == uv_envs.DeleteResult(KEY, uv_envs.DeleteStatus.DELETED)
    assert not environment.env_path.exists()
    assert fake_manager.list_environments() == []
    assert remote.delete(KEY, timeout=30) == uv_envs.DeleteResult(
        KEY, uv_envs.DeleteStatus.NOT_FOUND
    )
    with pytest.raises(uv_envs.EnvironmentNotFound):
        remote.get(KEY)


@pytest.mark.parametrize("call", ["get", "dependencies", "export", "sync", "add", "remove"])
def test_a_missing_env_raises_environment_not_found(remote: RemoteEnvManager, call: str) -> None:
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: remote.get(MISSING),
        "dependencies": lambda: remote.dependencies(MISSING),
        "export": lambda: remote.export(MISSING),
        "sync": lambda: remote.sync(MISSING),
        "add": lambda: remote.add(MISSING, ["alpha"]),
        "remove": lambda: remote.remove(MISSING, ["alpha"]),
    }
    with pytest.raises(uv_envs.EnvironmentNotFound):
        calls[call]()


def test_bad_input_is_invalid_input(remote: RemoteEnvManager) -> None:
    remote.ensure(KEY, ["alpha"])
    with pytest.raises(uv_envs.InvalidInput):
        remote.add(KEY, [])  # nothing to add
    with pytest.raises(uv_envs.InvalidInput):
        remote.ensure(KEY, ["not a requirement!"])


def test_operations_page_the_audit_trail_and_delete_operations_drops_it(
    remote: RemoteEnvManager, fake_manager: uv_envs.EnvManager
) -> None:
    remote.ensure(KEY, ["alpha"])
    remote.add(KEY, ["gamma"])
    remote.ensure(uv_envs.EnvKey("other", "node"), ["alpha"])
    page = remote.operations("wf", limit=1)
    local = fake_manager.operations("wf", limit=1)
    assert (page.total, page.limit, page.offset) == (local.total, 1, 0)
    assert [(r.id, r.operation, r.status) for r in page.items] == [
        (r.id, r.operation, r.status) for r in local.items
    ]
    assert page.items[0].operation == "add"  # newest first
    assert page.items[0].finished_at is not None
    everything = remote.operations("wf", "node", status="SUCCESS")
    assert {record.operation for record in everything.items} >= {"create", "add"}
    deleted = remote.delete_operations("wf", "node")
    assert (deleted.workflow_id, deleted.node_id) == ("wf", "node")
    assert deleted.deleted_count == everything.total
    assert remote.operations("wf").total == 0
    assert remote.operations("other").total >= 1


def test_watch_replays_after_a_sequence_number(
    remote: RemoteEnvManager, fake_manager: uv_envs.EnvManager
) -> None:
    fake_manager.create(KEY, packages=["alpha"])
    last = fake_manager.events.last_sequence
    fake_manager.delete(KEY)
    watching = remote.watch(after=last)
    try:
        event = next(watching)
    finally:
        watching.close()
    assert (event.name, event.sequence) == ("EnvironmentDeleted", last + 1)
