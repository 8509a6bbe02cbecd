"""Slow work never runs on the HTTP event loop (issue 18, finding 6).

Health missed 1 s during 500 concurrent ``GET /v1/envs``: the core call ran
on the pool, but turning each listing into JSON ran on the event loop every
request shares. These tests record where that work runs. How fast health
answers during a burst is a figure for benchmarks/bench_soak.py, not a test.
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import pytest

pytest.importorskip("fastapi", reason="the HTTP API needs the [http] extra")

import httpx

import uv_envs
from uv_envs_server._http.v1 import models

if TYPE_CHECKING:
    from collections.abc import Callable


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture
def where(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[bool]]:
    """For each converter patched, whether each call ran on an event loop."""
    seen: dict[str, list[bool]] = {}
    lock = threading.Lock()
    for name in ("env_json", "operations_json"):
        original = getattr(models, name)

        def recording(*args: Any, _name: str = name, _original: Any = original) -> Any:  # noqa: ANN401 - passes through
            with lock:
                seen.setdefault(_name, []).append(_on_event_loop())
            return _original(*args)

        monkeypatch.setattr(models, name, recording)
    return seen


def test_listings_and_audit_pages_are_rendered_off_the_event_loop(
    http_serve: Callable[..., Any],
    fake_manager: uv_envs.EnvManager,
    where: dict[str, list[bool]],
) -> None:
    for node in ("a", "b", "c"):
        fake_manager.ensure(uv_envs.EnvKey("wf", node), packages=["alpha"])
    server = http_serve(fake_manager)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert len(http.get("/v1/envs").json()["environments"]) == 3
        assert http.get("/v1/operations").json()["total"] >= 3
    assert where["env_json"] == [False, False, False]
    assert where["operations_json"] == [False]
