"""``/docs`` renders its operations in headless Chromium with every non-loopback request cut.

test_http_docs_offline.py checks the HTML names only the server's own assets;
this runs them: swagger-ui must load, fetch ``/openapi.json`` and draw one
block per operation while the network beyond loopback answers nothing (issue 29).
As in test_http_page.py, Playwright drives Debian's Chromium at /usr/bin/chromium.
"""

# ruff: noqa: E402 - the imports after importorskip need the optional extras

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")
pytest.importorskip("fastapi_offline", reason="offline docs need fastapi-offline")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")

import httpx

from .test_http_page import ARGS, CHROMIUM

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from playwright.sync_api import Route

    import uv_envs

WAIT_MS = 60_000
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options"})


def test_docs_render_every_operation_with_the_network_off(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager, tmp_path: Path
) -> None:
    if not CHROMIUM.is_file():
        reason = "Chromium is not installed at /usr/bin/chromium: apt-get install -y chromium"
        if os.environ.get("UV_ENVS_REQUIRE_BROWSER"):
            pytest.fail(reason + " (.ci/run sets UV_ENVS_REQUIRE_BROWSER: it must not skip)")
        pytest.skip(reason)
    server = http_serve(fake_manager)
    schema = httpx.get(f"{server.url}/openapi.json").json()
    operations = sum(1 for item in schema["paths"].values() for method in item if method in METHODS)
    assert operations > 20, schema["paths"].keys()
    requested: list[str] = []
    external: list[str] = []

    def only_loopback(route: Route) -> None:
        url = route.request.url
        requested.append(url)
        if urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            external.append(url)
            route.abort("internetdisconnected")

    shot = tmp_path / "docs.png"
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), args=ARGS
        )
        try:
            context.route("**/*", only_loopback)
            page = context.new_page()
            page.goto(f"{server.url}/docs", wait_until="load", timeout=WAIT_MS)
            page.wait_for_selector(".opblock", timeout=WAIT_MS)
            page.wait_for_function(
                f"document.querySelectorAll('.opblock').length >= {operations}", timeout=WAIT_MS
            )
            blocks = page.locator(".opblock").count()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            context.close()
    assert blocks == operations
    assert external == [], external
    assert any(url.endswith("/openapi.json") for url in requested), requested
    assert shot.stat().st_size > 10_000
