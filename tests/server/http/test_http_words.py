"""HTTP errors in the API's words: field names and routes, not regexes, hashes or Python calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import httpx

from uv_envs import EnvKey

if TYPE_CHECKING:
    from collections.abc import Callable

    import uv_envs


def test_an_id_with_a_slash_is_refused_in_a_sentence(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager)
    body = {"workflow_id": "wf", "node_id": "no/slash", "packages": ["alpha"]}
    answer = httpx.post(f"{server.url}/v1/envs", json=body)
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["error_class"] == "InvalidIdentifier"
    assert "body.node_id: not an id" in problem["detail"]
    assert "a slash is never part of an id" in problem["detail"]
    assert "[A-Za-z" not in problem["detail"]  # no regex
    assert "no/slash" not in answer.text  # the input is not echoed


def test_a_conflicting_create_names_the_put_and_what_differs(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager)
    body = {"workflow_id": "wf", "node_id": "n", "version_id": "v1", "packages": ["alpha"]}
    assert httpx.post(f"{server.url}/v1/envs", json=body).status_code == 201
    again = httpx.post(f"{server.url}/v1/envs", json=body | {"packages": ["alpha", "gamma"]})
    assert again.status_code == 409
    detail = again.json()["detail"]
    assert "packages: +gamma" in detail
    assert "PUT /v1/envs/wf/n/v1" in detail
    assert "ensure()" not in detail
    assert "!=" not in detail  # no spec hashes


def test_the_status_page_links_the_api_docs(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager)
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200
    for link in ("docs", "openapi.json"):
        assert f'href="{link}"' in page.text
        assert httpx.get(f"{server.url}/{link}").status_code == 200


def test_a_leased_env_is_deferred_naming_its_lease(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager
) -> None:
    key = EnvKey("wf", "n", "v1")
    fake_manager.create(key, packages=["alpha"])
    server = http_serve(fake_manager)
    with fake_manager.lease(key):  # issue 28: deferred, where it was 423 naming force=true
        deferred = httpx.delete(f"{server.url}/v1/envs/wf/n/v1")
    assert deferred.status_code == 200
    assert (deferred.json()["status"], deferred.json()["leases"]) == ("DEFERRED", 1)
