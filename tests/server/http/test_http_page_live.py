"""The status page follows /v1/events in a real headless Chromium: no reload, and no JS needed.

As in test_http_page.py, Playwright drives Debian's Chromium at /usr/bin/chromium.
"""

# ruff: noqa: E402 - the imports after importorskip need the optional extras

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")

import uv_envs
from uv_envs import EnvKey

from .test_http_page import ARGS, CHROMIUM

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from playwright.sync_api import BrowserContext

    from tests.server.conftest import GatedManager, HttpServe

TOKEN = "live-page-token"  # noqa: S105 - a test token for a loopback server
WAIT_MS = 60_000
KEY = "wf/node/v1"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    if not CHROMIUM.is_file():
        reason = "Chromium is not installed at /usr/bin/chromium: apt-get install -y chromium"
        if os.environ.get("UV_ENVS_REQUIRE_BROWSER"):
            pytest.fail(reason + " (.ci/run sets UV_ENVS_REQUIRE_BROWSER: it must not skip)")
        pytest.skip(reason)
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=ARGS,
            headless=True,
            extra_http_headers={"Authorization": f"Bearer {TOKEN}"},
        )
        try:
            yield context
        finally:
            context.close()


def test_the_page_shows_a_create_live_without_a_reload(
    browser: BrowserContext,
    http_serve: HttpServe,
    gated_manager: GatedManager,
) -> None:
    manager, gate = gated_manager()
    server = http_serve(manager, token=TOKEN)
    page = browser.new_page()
    page.goto(server.url + "/")
    page.wait_for_function(
        "document.getElementById('live-state').textContent.startsWith('Live:')", timeout=WAIT_MS
    )
    page.evaluate("window.sameDocument = true")

    errors: list[BaseException] = []

    def create() -> None:
        try:
            manager.create(EnvKey("wf", "node", "v1"), packages=["alpha"])
        except BaseException as exc:
            errors.append(exc)

    creating = threading.Thread(target=create)
    creating.start()
    assert gate.entered.wait(60)
    # uv is running (held by the gate): the operation is in flight, resolving.
    row = f"#inflight tr[data-key='{KEY}']"
    page.wait_for_selector(f"{row} .phase[data-phase='resolving'] progress", timeout=WAIT_MS)
    page.wait_for_selector(f"#envs tr[data-key='{KEY}'] .badge.CREATING", timeout=WAIT_MS)
    gate.release.set()
    creating.join(60)
    assert not creating.is_alive()
    assert not errors
    # Done: the env is READY in the table, the operation has left the in-flight list.
    page.wait_for_selector(f"#envs tr[data-key='{KEY}'] .badge.READY", timeout=WAIT_MS)
    page.wait_for_selector(row, state="detached", timeout=WAIT_MS)
    assert "none" in page.locator("#inflight tbody").inner_text()

    # A failure shows up at the top of the failures, with its error.
    with pytest.raises(uv_envs.ResolutionFailed):
        manager.create(EnvKey("wf", "broken"), packages=["nosuch"])
    failure = page.locator("#failures tr.failure").first
    failure.wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        "document.querySelector('#failures tr.failure').textContent.includes('wf/broken/')",
        timeout=WAIT_MS,
    )
    assert "EnvironmentCreationFailed" in failure.inner_text()

    # Deleted: the row is struck through, still without a reload.
    manager.delete(EnvKey("wf", "node", "v1"))
    page.wait_for_selector(f"#envs tr.live-gone[data-key='{KEY}']", timeout=WAIT_MS)
    assert page.evaluate("window.sameDocument") is True


def test_the_page_still_works_without_javascript(
    browser: BrowserContext,
    http_serve: HttpServe,
    fake_manager: uv_envs.EnvManager,
) -> None:
    fake_manager.create(EnvKey("wf", "node", "v1"), packages=["alpha"])
    server = http_serve(fake_manager, token=TOKEN)
    # A context with JavaScript off, from the browser of the persistent one.
    if browser.browser is None:
        pytest.skip("the persistent context has no browser object to make another context")
    context = browser.browser.new_context(
        java_script_enabled=False, extra_http_headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        page = context.new_page()
        page.goto(server.url + "/")
        assert "READY" in page.locator(f"#envs tr[data-key='{KEY}']").inner_text()
        assert "need JavaScript" in page.locator("#live-state").inner_text()
        assert fake_manager.events.stats.subscribers == 0
    finally:
        context.close()


def test_a_page_made_mid_create_shows_it_in_flight_until_it_ends(
    browser: BrowserContext,
    http_serve: HttpServe,
    gated_manager: GatedManager,
) -> None:
    manager, gate = gated_manager()
    server = http_serve(manager, token=TOKEN)
    creating = threading.Thread(
        target=lambda: manager.create(EnvKey("wf", "node", "v1"), packages=["alpha"])
    )
    creating.start()
    try:
        assert gate.entered.wait(60)
        # Made while uv runs: the create is in flight, the env CREATING with no generation yet.
        page = browser.new_page()
        page.goto(server.url + "/")
        page.wait_for_function(
            "document.getElementById('live-state').textContent.startsWith('Live:')",
            timeout=WAIT_MS,
        )
        running = page.locator(f"#inflight tr[data-key='{KEY}']")
        assert "create" in running.inner_text()
        assert "none" not in page.locator("#inflight tbody").inner_text()
        env = page.locator(f"#envs tr[data-key='{KEY}']")
        assert "CREATING" in env.inner_text()
        assert env.locator("td").nth(6).inner_text().strip() == "—"
    finally:
        gate.release.set()
        creating.join(60)
    assert not creating.is_alive()
    # Its end arrives live: the row goes, "none" is back, the env READY.
    page.wait_for_selector(f"#inflight tr[data-key='{KEY}']", state="detached", timeout=WAIT_MS)
    assert "none" in page.locator("#inflight tbody").inner_text()
    page.wait_for_selector(f"#envs tr[data-key='{KEY}'] .badge.READY", timeout=WAIT_MS)
