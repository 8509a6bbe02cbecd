"""The server under load and hostile conditions (issue 18); prints markdown tables.

    python benchmarks/bench_soak.py [--parts burst,soak,fuzz,trial]
        [--soak-seconds 600] [--trial-seconds 180] [--clients 32] [--kills 3]

``burst``: health p50/p99/max over HTTP while 500 ``GET /v1/envs`` on a
16-env root run at once. ``soak``: writes (an ensure of a new spec and a
delete, over gRPC and HTTP) for ``--soak-seconds``, the server's RSS sampled
every 10 s. ``fuzz``: schemathesis' runner with every check and phase, 300
cases per operation (the test runs 25). ``trial``: ``--clients`` clients,
half gRPC and half HTTP, for ``--trial-seconds``, the server killed with
SIGKILL ``--kills`` times and restarted: operations, p50/p99 per kind, lost
writes, wrong answers, recovery time, RSS over time.

Servers are ``python -m uv_envs_server`` processes on 127.0.0.1 (real uv, the
tests' wheelhouse, no index); everything goes under one temporary directory,
removed at the end. Loops are bounded; it stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from bench_grpc import ROOT, _percentile
from bench_trial import bench_trial
from soak_server import SPECS, Server

sys.path.insert(0, str(ROOT))

import uv_envs
from tests.server.http.test_http_schemathesis import run_schemathesis
from tests.support.wheelhouse import build_wheelhouse
from uv_envs.testing import FakePythonFinder, FakeUvExecutor
from uv_envs_server import EnvManagerClient, HttpEnvClient, ServeOptions, create_http_server

# -- burst ------------------------------------------------------------------------------


# Health probed every 10 ms from a process of its own, so the burst's client does not
# delay the probes it measures; milliseconds per probe, one a line, until stdin closes.
PROBE = """
import sys, threading, time, httpx
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
with httpx.Client(base_url=sys.argv[1], timeout=30) as http:
    while not stop.is_set():
        started = time.perf_counter()
        http.get("/v1/health").raise_for_status()
        print((time.perf_counter() - started) * 1000, flush=True)
        time.sleep(0.01)
"""


async def _burst(url: str, requests: int) -> None:
    limits = httpx.Limits(max_connections=requests + 10)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        answers = await asyncio.gather(*(http.get("/v1/envs") for _ in range(requests)))
    assert all(a.status_code == 200 for a in answers)


def bench_burst(base: Path, wheelhouse: Path, requests: int = 500) -> str:
    server = Server(base / "burst", wheelhouse)
    server.root.mkdir(parents=True)
    server.start()
    try:
        with HttpEnvClient(server.http, timeout=300) as client:
            for n in range(16):
                client.ensure(uv_envs.EnvKey("burst", f"n{n}"), SPECS[n % 2])
        probe = subprocess.Popen(
            [sys.executable, "-c", PROBE, server.http],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1)  # the probe's imports and first call
        asyncio.run(_burst(server.http, requests))
        output, _ = probe.communicate("", timeout=60)
        health = [float(line) for line in output.split()][1:]
    finally:
        server.stop()
    slow = sum(1 for h in health if h > 1000)
    return (
        f"| health probes | p50 ms | p99 ms | max ms | over 1 s |\n|---|---|---|---|---|\n"
        f"| {len(health)} | {_percentile(health, 0.5):.1f} | {_percentile(health, 0.99):.1f} "
        f"| {max(health):.1f} | {slow} |"
    )


# -- soak -------------------------------------------------------------------------------


def bench_soak(base: Path, wheelhouse: Path, seconds: float) -> str:
    server = Server(base / "soak", wheelhouse)
    server.root.mkdir(parents=True)
    server.start()
    deadline = time.monotonic() + seconds
    counter = itertools.count()
    done: Counter[str] = Counter()
    samples: list[tuple[float, float]] = []

    def writer(wire: str) -> None:
        grpc_client = EnvManagerClient(server.grpc, timeout=300)
        http_client = HttpEnvClient(server.http, timeout=300)
        try:
            while time.monotonic() < deadline:
                n = next(counter)
                # A new spec hash and store entry each time: what grew the lock registry.
                spec = [f"alpha>=1.0,<{n + 3}"]
                client = grpc_client if wire == "grpc" else http_client  # one contract
                client.ensure(uv_envs.EnvKey("soak", f"n{n}"), spec)
                client.delete(uv_envs.EnvKey("soak", f"n{n}"))
                done[wire] += 2
        finally:
            grpc_client.close()
            http_client.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in ("grpc", "http") * 2]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        samples.append((time.monotonic() - started, server.rss_mb()))
        time.sleep(10)
    for thread in threads:
        thread.join()
    samples.append((time.monotonic() - started, server.rss_mb()))
    server.stop()
    # The first minute warms imports and caches; growth is measured after it.
    settled = [s for s in samples if s[0] >= 60] or samples
    (t0, r0), (t1, r1) = settled[0], settled[-1]
    rate = (r1 - r0) / max(t1 - t0, 1) * 60
    curve = ", ".join(f"{t:.0f} s: {r:.0f}" for t, r in samples[:: max(1, len(samples) // 12)])
    return (
        f"| writes | seconds | RSS first / last MB | growth after 1 min, MB/min |\n"
        f"|---|---|---|---|\n| {sum(done.values())} | {seconds:.0f} | "
        f"{samples[0][1]:.0f} / {samples[-1][1]:.0f} | {rate:+.2f} |\n\nRSS (MB): {curve}"
    )


# -- fuzz -------------------------------------------------------------------------------


def bench_fuzz(base: Path, max_examples: int = 300) -> str:
    folder = base / "fuzz"
    folder.mkdir()
    manager = uv_envs.EnvManager(
        uv_envs.Settings(root=folder / "root", lock_timeout=2),
        executor=FakeUvExecutor({"alpha": ["1.0", "2.0"], "beta": ["1.0"]}),
        python_finder=FakePythonFinder(),
    )
    server = create_http_server(manager, ServeOptions(max_workers=4))
    server.start()
    try:
        started = time.monotonic()
        result = run_schemathesis(server.url, folder, max_examples=max_examples, timeout=3600)
    finally:
        server.stop(5)
    counted = re.search(r"\d+ generated[^\n]*", result.stdout)
    cases = counted.group(0) if counted else "?"
    outcome = "nothing found" if result.returncode == 0 else result.stdout[-3000:]
    return f"{cases.strip()} in {time.monotonic() - started:.0f} s: {outcome}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="burst,soak,fuzz,trial")
    parser.add_argument("--soak-seconds", type=float, default=600)
    parser.add_argument("--trial-seconds", type=float, default=180)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    base = Path(tempfile.mkdtemp(prefix="uv-envs-soak-"))
    try:
        wheelhouse = build_wheelhouse(base / "wheels")
        if "burst" in parts:
            print("## Health during a burst of 500 listings\n\n" + bench_burst(base, wheelhouse))
        if "soak" in parts:
            print("\n## Write soak\n\n" + bench_soak(base, wheelhouse, args.soak_seconds))
        if "fuzz" in parts:
            print("\n## schemathesis, every check\n\n" + bench_fuzz(base))
        if "trial" in parts:
            trial = bench_trial(base, wheelhouse, args.trial_seconds, args.clients, args.kills)
            print("\n## Load and kill -9 trial\n\n" + trial)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
