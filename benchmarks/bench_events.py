"""Benchmark the live event stream over HTTP (SSE); prints a markdown table.

    python benchmarks/bench_events.py [--subscribers 100] [--creates 6] [--events 2000]

Measures, with one HTTP server on 127.0.0.1 in this process:

- create latency (real uv, a local wheelhouse, fresh keys) with no subscriber
  and with ``--subscribers`` SSE subscribers reading every event, in
  alternating rounds; the ratio of the medians is what subscribers cost a create;
- fan-out: ``--events`` events published as fast as the core takes them, and
  the time until every subscriber has read every one of them (events
  delivered per second, over all subscribers).

The subscribers are httpx streams on one asyncio loop in a process of their own.
Everything stops by itself and is written under one temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

import uv_envs  # noqa: E402
from tests.support.wheelhouse import build_wheelhouse  # noqa: E402
from uv_envs_server import ServeOptions, create_http_server  # noqa: E402


async def _read(client: httpx.AsyncClient, received: Any, number: int) -> None:  # noqa: ANN401
    async with client.stream("GET", "/v1/events") as response:
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                received[number] += 1


async def _subscribe(url: str, received: Any, stop: Any) -> None:  # noqa: ANN401 - mp proxies
    limits = httpx.Limits(max_connections=len(received) + 1)
    timeout = httpx.Timeout(30, read=None)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        readers = [asyncio.create_task(_read(client, received, n)) for n in range(len(received))]
        await asyncio.to_thread(stop.wait)
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def _subscriber_process(url: str, received: Any, stop: Any) -> None:  # noqa: ANN401
    asyncio.run(_subscribe(url, received, stop))


class Subscribers:
    """``count`` SSE readers in a process of their own (as remote clients would be)."""

    def __init__(self, url: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.received = context.Array("q", count, lock=False)
        self.stop = context.Event()
        self.process = context.Process(
            target=_subscriber_process, args=(url, self.received, self.stop)
        )

    def __enter__(self) -> Self:
        self.process.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.process.join(60)


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        time.sleep(0.005)


def create_ms(manager: uv_envs.EnvManager, number: int) -> float:
    started = time.perf_counter()
    # refresh: uv resolves every time, as a create of a new spec does.
    key = uv_envs.EnvKey("bench", f"n{number}")
    manager.create(key, packages=["alpha", "gamma"], refresh=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--creates", type=int, default=6, help="creates per side")
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="uv-envs-bench-events-") as tmp:
        wheelhouse = build_wheelhouse(Path(tmp) / "wheelhouse")
        settings = uv_envs.Settings(
            root=Path(tmp) / "root",
            index=uv_envs.IndexSettings(find_links=(str(wheelhouse),), no_index=True),
        )
        manager = uv_envs.EnvManager(settings)
        manager.events.configure(buffer=args.events + 100)  # measure delivery, not cut-offs
        create_ms(manager, -1)  # warm uv's cache
        options = ServeOptions(
            max_watchers=args.subscribers, max_watchers_per_client=args.subscribers
        )
        server = create_http_server(manager, options)
        server.start()
        alone: list[float] = []
        watched: list[float] = []
        try:
            for number in range(args.creates):
                alone.append(create_ms(manager, 2 * number))
                with Subscribers(server.url, args.subscribers):
                    wait_until(lambda: manager.events.stats.subscribers == args.subscribers, "subs")
                    watched.append(create_ms(manager, 2 * number + 1))
                wait_until(lambda: manager.events.stats.subscribers == 0, "unsubscribe")
            with Subscribers(server.url, args.subscribers) as subscribers:
                wait_until(lambda: manager.events.stats.subscribers == args.subscribers, "subs")
                started = time.perf_counter()
                for number in range(args.events):
                    manager.events.publish(
                        uv_envs.EnvironmentDeleted(uv_envs.EnvKey("b", f"{number}"))
                    )
                published = time.perf_counter() - started
                wait_until(lambda: min(subscribers.received) >= args.events, "delivery")
                delivered = time.perf_counter() - started
                cut = manager.events.stats.cut_off
        finally:
            server.stop(5)

    ratio = statistics.median(watched) / statistics.median(alone)
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}; "
        f"Python {platform.python_version()}, fastapi {version('fastapi')}, "
        f"uvicorn {version('uvicorn')}, httpx {version('httpx')}; server and creates in one "
        f"process, the subscribers in another; {args.creates} alternating creates per side"
    )
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| create, no subscriber (median) | {statistics.median(alone):.0f} ms |")
    print(f"| create, {args.subscribers} SSE subscribers | {statistics.median(watched):.0f} ms |")
    print(f"| ratio | {ratio:.3f}x |")
    print(f"| {args.events} events published | {args.events / published:.0f} events/s |")
    total = args.events * args.subscribers
    print(f"| delivered to all {args.subscribers} subscribers | {total / delivered:.0f} events/s |")
    print(f"| subscribers cut off | {cut} |")


if __name__ == "__main__":
    main()
