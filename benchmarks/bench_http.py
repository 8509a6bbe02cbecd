"""Benchmark the HTTP API beside the gRPC server, in one run; prints a markdown table.

    python benchmarks/bench_http.py [--status-calls 2000] [--threads 8] [--workers 16] [--rounds 2]

Both servers serve one manager on one root, in this process, on 127.0.0.1.
Measured for each: env status latency (p50, p99) with one client thread, and
throughput with one and ``--threads`` client threads, against a READY env
(``GET /v1/envs/bench/status/@`` and ``GetEnvStatus``), plus an ensure of an
existing env (the retry fast path). The two wires are measured in turns,
``--rounds`` times each, so a load spike from elsewhere on the machine hits
both; the best round of each is reported. Loops are bounded; it stops by itself.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import httpx
from bench_grpc import ROOT, _cpus, bench_status, measure_calls
from parts import wtb

sys.path.insert(0, str(ROOT))

import uv_envs
from tests.support.wheelhouse import build_wheelhouse
from uv_envs_server import (
    HttpEnvClient,
    ServeOptions,
    create_http_server,
    create_server,
)

STATUS_PATH = "/v1/envs/bench/status/@"


def bench_http_status(url: str, calls: int, threads: int) -> dict[str, float]:
    """The same figures as ``bench_grpc.bench_status``, over HTTP (one keep-alive pool)."""
    with httpx.Client(
        base_url=url, timeout=30, limits=httpx.Limits(max_connections=threads)
    ) as http:
        http.get(STATUS_PATH).raise_for_status()  # connect
        return measure_calls(lambda: http.get(STATUS_PATH).raise_for_status(), calls, threads)


def bench_retry(ensure: Callable[[], object], calls: int = 50) -> float:
    """Median milliseconds of an ensure of an env that exists with the same spec."""
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        ensure()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def _best(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {
        "p50_ms": min(r["p50_ms"] for r in rounds),
        "p99_ms": min(r["p99_ms"] for r in rounds),
        "rps_1": max(r["rps_1"] for r in rounds),
        "rps_n": max(r["rps_n"] for r in rounds),
        "retry_ms": min(r["retry_ms"] for r in rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status-calls", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=16, help="server worker threads, each")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="uv-envs-bench-http-") as tmp:
        wheelhouse = build_wheelhouse(Path(tmp) / "wheelhouse")
        settings = uv_envs.Settings(
            root=Path(tmp) / "root",
            index=uv_envs.IndexSettings(find_links=(str(wheelhouse),), no_index=True),
        )
        manager = uv_envs.EnvManager(settings)
        manager.ensure(uv_envs.EnvKey("bench", "status"), packages=["alpha"])
        options = ServeOptions(max_workers=args.workers)
        grpc_server, port = create_server(manager, options)
        grpc_server.start()
        http_server = create_http_server(manager, options)
        http_server.start()
        target = f"127.0.0.1:{port}"
        results: dict[str, list[dict[str, float]]] = {"gRPC": [], "HTTP": []}
        try:
            with (
                wtb.stub(target) as grpc_client,
                HttpEnvClient(http_server.url, timeout=30) as http_client,
            ):
                for _ in range(args.rounds):
                    grpc = bench_status(target, args.status_calls, args.threads)
                    grpc["retry_ms"] = bench_retry(
                        lambda: wtb.create_env(
                            grpc_client, "bench", "status", ["alpha"], timeout=30
                        )
                    )
                    results["gRPC"].append(grpc)
                    http = bench_http_status(http_server.url, args.status_calls, args.threads)
                    http["retry_ms"] = bench_retry(
                        lambda: http_client.ensure(uv_envs.EnvKey("bench", "status"), ["alpha"])
                    )
                    results["HTTP"].append(http)
        finally:
            http_server.stop(5)
            grpc_server.stop(None).wait()
            grpc_server.executor.shutdown(wait=True)

    grpc, http = _best(results["gRPC"]), _best(results["HTTP"])
    print(
        f"Machine: {platform.machine()}, {_cpus()} cores, Linux {platform.release()}; "
        f"Python {platform.python_version()}, grpcio {version('grpcio')}, "
        f"fastapi {version('fastapi')}, uvicorn {version('uvicorn')}, httpx {version('httpx')}; "
        f"{args.workers} workers per server, both in the client's process; "
        f"best of {args.rounds} alternating rounds, {args.status_calls} calls each"
    )
    print()
    print("| measure | gRPC | HTTP | HTTP / gRPC |")
    print("|---|---|---|---|")
    rows = (
        ("status p50, 1 client thread", "p50_ms", "ms", ".2f"),
        ("status p99, 1 client thread", "p99_ms", "ms", ".2f"),
        ("status throughput, 1 client thread", "rps_1", "calls/s", ".0f"),
        (f"status throughput, {args.threads} client threads", "rps_n", "calls/s", ".0f"),
        ("ensure of an existing env (median)", "retry_ms", "ms", ".2f"),
    )
    for label, field, unit, fmt in rows:
        ratio = http[field] / grpc[field]
        print(
            f"| {label} | {grpc[field]:{fmt}} {unit} | {http[field]:{fmt}} {unit} | {ratio:.2f}x |"
        )


if __name__ == "__main__":
    main()
