"""The status page in a real headless Chromium (Debian's), driven by Playwright.

Playwright's own browser download is not used: it is pointed at
``/usr/bin/chromium``. Without that binary the test skips and says why.
"""

# ruff: noqa: E402 - the imports after importorskip need the optional extras

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package")

import uv_envs
from uv_envs import EnvKey

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Page

    from tests.server.conftest import HttpServe

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TOKEN = "page-token"  # noqa: S105 - a test token for a loopback server


@pytest.fixture
def browser_page(tmp_path: Path) -> Iterator[Page]:
    if not CHROMIUM.is_file():
        reason = "Chromium is not installed at /usr/bin/chromium: apt-get install -y chromium"
        if os.environ.get("UV_ENVS_REQUIRE_BROWSER"):
            pytest.fail(reason + " (.ci/run sets UV_ENVS_REQUIRE_BROWSER: it must not skip)")
        pytest.skip(reason)
    with sync_api.sync_playwright() as playwright:
        # A persistent context is how Playwright takes a fresh --user-data-dir of our own.
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=ARGS,
            headless=True,
            extra_http_headers={"Authorization": f"Bearer {TOKEN}"},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_the_page_shows_envs_failures_and_what_stands_out(
    browser_page: Page,
    http_serve: HttpServe,
    manager: uv_envs.EnvManager,
    tmp_path: Path,
) -> None:
    manager.ensure(EnvKey("ml", "rag", "v1"), packages=["alpha<2"])
    manager.ensure(EnvKey("ml", "ingest"), packages=["gamma"])
    with pytest.raises(uv_envs.ResolutionFailed):
        manager.create(EnvKey("ml", "broken", "v1"), packages=["nosuch"])
    # Damage one env on disk, as verify finds it.
    damaged = manager.get(EnvKey("ml", "ingest"))
    site = next(
        (damaged.env_path / "gens" / "1" / ".venv").resolve().glob("lib/python*/site-packages")
    )
    module = site / "gamma" / "__init__.py"
    module.chmod(0o644)
    module.write_text("tampered = True\n")
    assert not manager.verify(EnvKey("ml", "ingest")).ok
    server = http_serve(manager, token=TOKEN)

    with manager.lease(EnvKey("ml", "rag", "v1")):
        answer = browser_page.goto(server.url + "/")
        assert answer is not None
        assert answer.status == 200
        browser_page.screenshot(path=str(tmp_path / "status.png"), full_page=True)

        rows = browser_page.locator("#envs tbody tr")
        assert rows.count() == 2
        rag = browser_page.locator("tr[data-key='ml/rag/v1']")
        assert "READY" in rag.inner_text()
        assert "LEASED" in rag.inner_text()
        assert "leased" in (rag.get_attribute("class") or "")
        assert "alpha<2" in rag.inner_text()
        digest = manager.get(EnvKey("ml", "rag", "v1")).digest
        assert digest[:19] in rag.inner_text()
        assert rag.locator(".digest").get_attribute("title") == digest
        ingest = browser_page.locator("tr[data-key='ml/ingest/']")
        assert "DAMAGED" in ingest.inner_text()
        assert "damaged" in (ingest.get_attribute("class") or "")
        assert "verify" in ingest.inner_text()
        # A background colour makes the damaged row stand out from the rest.
        colour = ingest.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert colour not in {"rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"}

        failure = browser_page.locator("#failures tr.failure")
        assert failure.count() == 1
        text = failure.inner_text()
        assert "ml/broken/v1" in text
        assert "create" in text
        assert "nosuch" in text  # uv's stderr

    # Read-only and behind the token: without it the page is refused.
    anonymous = browser_page.context.request.get(
        server.url + "/", headers={"Authorization": "Bearer wrong"}
    )
    assert anonymous.status == 401
