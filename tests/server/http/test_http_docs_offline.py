"""``/docs`` and ``/redoc`` load nothing from the internet: their assets come from the server."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import httpx

pytest.importorskip("fastapi_offline", reason="offline docs need fastapi-offline")

if TYPE_CHECKING:
    from collections.abc import Callable

    import uv_envs

TOKEN = "docs-Token_3"  # noqa: S105 - a test token for a loopback server


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_only_the_servers_own_assets(
    http_serve: Callable[..., Any], fake_manager: uv_envs.EnvManager, page: str
) -> None:
    server = http_serve(fake_manager, token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    html = httpx.get(f"{server.url}{page}", headers=auth if page == "/redoc" else None)
    assert html.status_code == 200
    assert "https://" not in html.text
    assert "http://" not in html.text
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html.text)
    assert assets, html.text
    for asset in assets:
        assert asset.startswith("/docs/assets/"), asset
        # Open as /docs is: a browser fetches them without the token.
        fetched = httpx.get(f"{server.url}{asset}")
        assert fetched.status_code == 200, asset
        assert len(fetched.content) > 1000
