"""One cleanup policy over every door: the same floor, refusals and audit record (issue 18).

The trial found ``POST /v1/cleanup`` without the floor gRPC applies:
``{"idle_hours": 0}`` deleted a minute-old env, and ``{"max_bytes": false}``
was read as 0 and deleted envs. The library, the CLI (tests/cli/test_cli.py),
gRPC and HTTP now pass their floor to one core check.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import attrs
import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import httpx

import uv_envs
from uv_envs_server._generated import env_manager_pb2 as pb

if TYPE_CHECKING:
    from collections.abc import Callable

    from .conftest import OpenStub, Serve

FRESH = uv_envs.EnvKey("wf", "fresh")
STALE = uv_envs.EnvKey("wf", "stale")


def _age(manager: uv_envs.EnvManager, key: uv_envs.EnvKey, hours: float) -> None:
    """Make the env look last used ``hours`` ago (record and hand-out stamp)."""
    then = time.time() - hours * 3600
    environment = manager.get(key)
    manager._core.services.metadata.save(attrs.evolve(environment, updated_at=then))
    os.utime(environment.env_path / ".last-used", (then, then))


def _fresh_and_stale(manager: uv_envs.EnvManager) -> None:
    manager.ensure(FRESH, packages=["alpha"])
    manager.ensure(STALE, packages=["alpha"])
    _age(manager, STALE, hours=2)


def _statuses(manager: uv_envs.EnvManager) -> dict[str, uv_envs.EnvStatus]:
    return {key.node_id: manager.status(key).status for key in (FRESH, STALE)}


KEPT_FRESH = {"fresh": uv_envs.EnvStatus.READY, "stale": uv_envs.EnvStatus.NOT_FOUND}


@pytest.mark.parametrize(
    "body",
    [{"idle_hours": 0}, {"max_bytes": 0}, {"idle_hours": 0, "max_bytes": 0}],
    ids=["idle-0", "budget-0", "both-0"],
)
def test_http_cleanup_keeps_envs_used_within_the_floor(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager, body: dict[str, int]
) -> None:
    _fresh_and_stale(fake_manager)
    server = http_serve(fake_manager)
    answer = httpx.post(f"{server.url}/v1/cleanup", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"] == ["wf/stale/"]
    assert _statuses(fake_manager) == KEPT_FRESH


def test_http_cleanup_with_a_floor_of_zero_deletes_everything_unleased(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager
) -> None:
    _fresh_and_stale(fake_manager)
    server = http_serve(fake_manager, min_cleanup_idle_hours=0)
    answer = httpx.post(f"{server.url}/v1/cleanup", json={"idle_hours": 0}, timeout=30)
    assert sorted(answer.json()["deleted"]) == ["wf/fresh/", "wf/stale/"]


@pytest.mark.parametrize(
    "body",
    [
        {"max_bytes": False},
        {"idle_hours": True},
        {"max_bytes": 1.5},
        {"max_bytes": "0"},
        {"idle_hours": "0"},
        {"idle_hours": 0, "force": True},
    ],
    ids=[
        "bool-bytes",
        "bool-hours",
        "fraction-bytes",
        "str-bytes",
        "str-hours",
        "extra",
    ],
)
def test_http_cleanup_refuses_a_wrongly_typed_limit_and_deletes_nothing(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager, body: dict[str, Any]
) -> None:
    _fresh_and_stale(fake_manager)
    server = http_serve(fake_manager, min_cleanup_idle_hours=0)  # no floor to hide behind
    answer = httpx.post(f"{server.url}/v1/cleanup", json=body, timeout=30)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error_class"] == "InvalidInput"
    assert set(_statuses(fake_manager).values()) == {uv_envs.EnvStatus.READY}


def test_http_cleanup_takes_a_whole_number_written_as_json_float(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager
) -> None:
    # To JSON Schema (and so to a generated client) 0.0 is an integer.
    _fresh_and_stale(fake_manager)
    server = http_serve(fake_manager)
    answer = httpx.post(f"{server.url}/v1/cleanup", json={"max_bytes": 0.0}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert _statuses(fake_manager) == KEPT_FRESH


def test_every_door_gives_the_same_refusal_for_no_limit(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager
) -> None:
    with pytest.raises(uv_envs.InvalidInput) as raised:
        fake_manager.cleanup()
    server = http_serve(fake_manager)
    answer = httpx.post(f"{server.url}/v1/cleanup", json={}, timeout=30)
    assert answer.status_code == 422
    assert answer.json()["detail"] == str(raised.value)


@pytest.mark.parametrize(
    "limits",
    [
        {"idle_seconds": True},
        {"max_bytes": False},
        {"max_bytes": 1.5},
        {"idle_seconds": 0, "min_idle_seconds": -1},
        {"idle_seconds": 0, "min_idle_seconds": float("nan")},
    ],
    ids=["bool-idle", "bool-bytes", "fraction-bytes", "negative-floor", "nan-floor"],
)
def test_the_library_refuses_a_bad_limit_and_deletes_nothing(
    fake_manager: uv_envs.EnvManager, limits: dict[str, Any]
) -> None:
    _fresh_and_stale(fake_manager)
    with pytest.raises(uv_envs.InvalidInput):
        fake_manager.cleanup(**limits)
    assert set(_statuses(fake_manager).values()) == {uv_envs.EnvStatus.READY}


@pytest.mark.parametrize(
    "limits", [{"idle_seconds": 0}, {"max_bytes": 0}], ids=["idle-0", "budget-0"]
)
def test_the_library_floor_holds_for_both_passes(
    fake_manager: uv_envs.EnvManager, limits: dict[str, int]
) -> None:
    _fresh_and_stale(fake_manager)
    report = fake_manager.cleanup(
        limits.get("idle_seconds"), max_bytes=limits.get("max_bytes"), min_idle_seconds=3600
    )
    assert report.deleted == (STALE,)
    assert _statuses(fake_manager) == KEPT_FRESH


def test_grpc_and_http_write_the_same_audit_record(
    serve: Serve,
    open_stub: OpenStub,
    http_serve: Callable[..., Any],
    fake_manager: uv_envs.EnvManager,
) -> None:
    def cleanup_record() -> dict[str, Any]:
        page = fake_manager.operations(node_id="stale", status=None, limit=10, offset=0)
        [record] = [r for r in page.items if r.operation == "cleanup"]
        return {"status": record.status, "metadata": dict(record.metadata)}

    _fresh_and_stale(fake_manager)
    stub = open_stub(serve(fake_manager))
    assert list(stub.Cleanup(pb.CleanupRequest(idle_hours=0), timeout=30).deleted) == ["wf/stale/"]
    over_grpc = cleanup_record()
    fake_manager.delete_operations("wf")

    _fresh_and_stale(fake_manager)
    server = http_serve(fake_manager)
    httpx.post(f"{server.url}/v1/cleanup", json={"idle_hours": 0}, timeout=30).raise_for_status()
    assert cleanup_record() == over_grpc
    # The floor, not the 0 asked for, is the age the env was judged by.
    metadata = over_grpc["metadata"]
    assert (metadata["reason"], metadata["idle_seconds"]) == ("idle", 3600.0)
