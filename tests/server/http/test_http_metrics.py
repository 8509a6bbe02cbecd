"""``GET /metrics``: Prometheus' text format, behind the token, moved by what the server did."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import httpx

import uv_envs
from uv_envs_server import EnvManagerClient, ServeOptions, create_http_server, create_server

parser = pytest.importorskip("prometheus_client.parser", reason="metrics need prometheus-client")

if TYPE_CHECKING:
    from collections.abc import Callable

TOKEN = "metrics-Token_7"  # noqa: S105 - a test token for a loopback server


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_requests_envs_and_watchers(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{server.url}/metrics").status_code == 401

    body = {"workflow_id": "wf", "node_id": "n", "version_id": "v1", "packages": ["alpha"]}
    assert httpx.post(f"{server.url}/v1/envs", json=body, headers=auth).status_code == 201
    missing = httpx.get(f"{server.url}/v1/envs/wf/gone/v1", headers=auth)
    assert missing.status_code == 404

    scraped = httpx.get(f"{server.url}/metrics", headers=auth)
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    samples = _samples(scraped.text)
    created = ("method", "POST"), ("route", "/v1/envs"), ("status", "201")
    assert samples[("uv_envs_http_requests_total", created)] == 1
    # By route template: the ids never become labels.
    env_route = "/v1/envs/{workflow_id}/{node_id}/{version_id}"
    not_found = ("method", "GET"), ("route", env_route), ("status", "404")
    assert samples[("uv_envs_http_requests_total", not_found)] == 1
    assert samples[("uv_envs_http_request_duration_seconds_count", (("route", "/v1/envs"),))] == 1
    assert samples[("uv_envs_environments", (("status", "READY"),))] == 1
    assert samples[("uv_envs_event_subscribers", ())] == 0
    assert samples[("uv_envs_events_published_total", ())] >= 1
    assert samples[("uv_envs_operations_recorded", (("status", "SUCCESS"),))] == 1
    assert samples[("uv_envs_operations_recorded", (("status", "FAILED"),))] == 0


def test_metrics_count_operations_uv_runs_and_the_store_after_a_real_create(
    http_serve: Callable[..., Any], manager: uv_envs.EnvManager
) -> None:
    server = http_serve(manager, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = {"workflow_id": "wf", "node_id": "n", "version_id": "v1", "packages": ["alpha"]}
    created = httpx.post(f"{server.url}/v1/envs", json=body, headers=auth, timeout=300)
    assert created.status_code == 201
    # A package the wheelhouse lacks: uv lock fails, and the create with it.
    failing = {**body, "node_id": "m", "packages": ["nosuch"]}
    refused = httpx.post(f"{server.url}/v1/envs", json=failing, headers=auth, timeout=300)
    assert refused.status_code == 422

    samples = _samples(httpx.get(f"{server.url}/metrics", headers=auth).text)
    ok = ("kind", "create"), ("outcome", "SUCCESS")
    failed = ("kind", "create"), ("outcome", "FAILED")
    assert samples[("uv_envs_operations_total", ok)] == 1
    assert samples[("uv_envs_operations_total", failed)] == 1
    assert samples[("uv_envs_operation_duration_seconds_count", ok)] == 1
    assert samples[("uv_envs_operation_duration_seconds_sum", ok)] > 0
    every = tuple(sorted((*ok, ("le", "+Inf"))))
    assert samples[("uv_envs_operation_duration_seconds_bucket", every)] == 1
    assert samples[("uv_envs_operations_running", ())] == 0
    # The same count the audit trail has, without reading it per scrape.
    assert manager.operations(status="FAILED").total == 1

    assert samples[("uv_envs_uv_runs_total", (("command", "lock"), ("outcome", "ok")))] >= 1
    assert samples[("uv_envs_uv_runs_total", (("command", "lock"), ("outcome", "failed")))] == 1
    assert samples[("uv_envs_uv_runs_total", (("command", "sync"), ("outcome", "ok")))] >= 1
    synced = ("command", "sync"), ("outcome", "ok")
    assert samples[("uv_envs_uv_run_duration_seconds_count", synced)] >= 1
    assert samples[("uv_envs_store_entries", ())] == 1
    assert samples[("uv_envs_store_bytes", ())] > 0


def test_metrics_count_the_grpc_calls_of_the_server_beside(
    fake_manager: uv_envs.EnvManager,
) -> None:
    grpc_server, port = create_server(fake_manager, ServeOptions(token=TOKEN))
    grpc_server.start()
    http = create_http_server(fake_manager, ServeOptions(token=TOKEN), grpc_calls=grpc_server.calls)
    http.start()
    try:
        with EnvManagerClient(f"127.0.0.1:{port}", token=TOKEN) as client:
            client.ensure(uv_envs.EnvKey("wf", "n", "v1"), packages=["alpha"])
            with pytest.raises(uv_envs.EnvironmentNotFound):
                client.dependencies(uv_envs.EnvKey("wf", "gone", "v1"))
        auth = {"Authorization": f"Bearer {TOKEN}"}
        samples = _samples(httpx.get(f"{http.url}/metrics", headers=auth).text)
    finally:
        http.stop(5)
        grpc_server.stop(None).wait()
        http.executor.shutdown(wait=True)
        grpc_server.executor.shutdown(wait=True)

    service = "/envmanager.EnvManagerService"
    created = ("code", "OK"), ("method", f"{service}/CreateEnv")
    assert samples[("uv_envs_grpc_requests_total", created)] == 1
    assert samples[("uv_envs_grpc_request_duration_seconds_count", created)] == 1
    missing = [
        value
        for (name, labels), value in samples.items()
        if name == "uv_envs_grpc_requests_total" and ("code", "NOT_FOUND") in labels
    ]
    assert missing == [1]
    # The create over gRPC is the manager's, counted once whichever door it came through.
    ok = ("kind", "create"), ("outcome", "SUCCESS")
    assert samples[("uv_envs_operations_total", ok)] == 1
