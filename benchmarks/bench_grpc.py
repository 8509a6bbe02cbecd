"""Benchmark the gRPC server over loopback; prints a markdown table.

    python benchmarks/bench_grpc.py [--status-calls 2000] [--threads 8] [--creates 5]
                                    [--workers 16] [--server-process]

Measures:

- GetEnvStatus latency (p50, p99) with one client thread, and throughput with
  ``--threads`` client threads, against a READY env;
- CreateEnv over gRPC against the same create in-process (``EnvManager.ensure``),
  each on fresh keys with real uv and a local wheelhouse (no network). The
  ratio of the medians is the server's overhead on a create.

By default the server runs in the benchmark's own process (client and server
share one interpreter); ``--server-process`` starts ``python -m uv_envs_server``
instead, on the same root. Everything runs on 127.0.0.1 with bounded loop
counts, and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from parts import wtb  # noqa: E402 - beside this script

import uv_envs  # noqa: E402
from tests.support.wheelhouse import build_wheelhouse  # noqa: E402
from uv_envs_server import ServeOptions, create_server  # noqa: E402


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_calls(call: Callable[[], object], calls: int, threads: int) -> dict[str, float]:
    """Latency of ``calls`` calls one after another, then throughput from ``threads`` at once.

    The caller has connected already, so the first call pays no handshake.
    """
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        latencies.append((time.perf_counter() - started) * 1000)

    per_thread = max(1, calls // threads)
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(per_thread):
            call()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in workers:
        thread.join(timeout=300)
    elapsed = time.perf_counter() - started
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": _percentile(latencies, 0.99),
        "rps_1": calls / (sum(latencies) / 1000),
        "rps_n": per_thread * threads / elapsed,
    }


def bench_status(target: str, calls: int, threads: int) -> dict[str, float]:
    with wtb.stub(target) as client:
        wtb.env_status(client, "bench", "status")  # connect
        return measure_calls(lambda: wtb.env_status(client, "bench", "status"), calls, threads)


def bench_create(manager: uv_envs.EnvManager, target: str, creates: int) -> dict[str, float]:
    packages = ["beta"]
    manager.ensure(uv_envs.EnvKey("bench", "warm"), packages=packages)  # fill uv's cache
    local, remote = [], []
    with wtb.stub(target) as client:
        for i in range(creates):
            started = time.perf_counter()
            manager.ensure(uv_envs.EnvKey("bench", f"local-{i}"), packages=packages)
            local.append(time.perf_counter() - started)
            started = time.perf_counter()
            wtb.create_env(client, "bench", f"remote-{i}", packages, timeout=600)
            remote.append(time.perf_counter() - started)
        # A retried CreateEnv of an existing env: the fast path WTB's retries take.
        retries = []
        for _ in range(20):
            started = time.perf_counter()
            wtb.create_env(client, "bench", "remote-0", packages, timeout=600)
            retries.append((time.perf_counter() - started) * 1000)
    return {
        "local_s": statistics.median(local),
        "remote_s": statistics.median(remote),
        "retry_ms": statistics.median(retries),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--status-calls", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--creates", type=int, default=5)
    parser.add_argument("--workers", type=int, default=16, help="server worker threads")
    parser.add_argument(
        "--server-process", action="store_true", help="run the server as its own process"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="uv-envs-bench-") as tmp:
        wheelhouse = build_wheelhouse(Path(tmp) / "wheelhouse")
        settings = uv_envs.Settings(
            root=Path(tmp) / "root",
            index=uv_envs.IndexSettings(find_links=(str(wheelhouse),), no_index=True),
        )
        manager = uv_envs.EnvManager(settings)
        manager.ensure(uv_envs.EnvKey("bench", "status"), packages=["alpha"])
        if args.server_process:
            process, target = _start_process(settings.root, wheelhouse, args.workers)
            try:
                status = bench_status(target, args.status_calls, args.threads)
                create = bench_create(manager, target, args.creates)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=120)
        else:
            options = ServeOptions(max_workers=args.workers)
            server, port = create_server(manager, options)
            server.start()
            try:
                status = bench_status(f"127.0.0.1:{port}", args.status_calls, args.threads)
                create = bench_create(manager, f"127.0.0.1:{port}", args.creates)
            finally:
                server.stop(None).wait()
                server.executor.shutdown(wait=True)

    print(
        f"Machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
        f"{_cpus()} cores, Linux {platform.release()}; Python {platform.python_version()}, "
        f"grpcio {version('grpcio')}, protobuf {version('protobuf')}, uv {version('uv')}; "
        f"{args.workers} server workers, server "
        f"{'in its own process' if args.server_process else 'in the client process'}"
    )
    print()
    print("| measure | value |")
    print("|---|---|")
    print(f"| GetEnvStatus p50, 1 client thread | {status['p50_ms']:.2f} ms |")
    print(f"| GetEnvStatus p99, 1 client thread | {status['p99_ms']:.2f} ms |")
    print(f"| GetEnvStatus throughput, 1 client thread | {status['rps_1']:.0f} calls/s |")
    print(
        f"| GetEnvStatus throughput, {args.threads} client threads | "
        f"{status['rps_n']:.0f} calls/s |"
    )
    print(f"| create in-process (median of {args.creates}) | {create['local_s']:.3f} s |")
    print(f"| CreateEnv over gRPC (median of {args.creates}) | {create['remote_s']:.3f} s |")
    print(f"| gRPC / in-process | {create['remote_s'] / create['local_s']:.2f}x |")
    print(f"| CreateEnv retry of an existing env (median) | {create['retry_ms']:.2f} ms |")


def _start_process(root: Path, wheelhouse: Path, workers: int) -> tuple[subprocess.Popen[str], str]:
    command = [
        sys.executable,
        "-m",
        "uv_envs_server",
        "--port",
        "0",
        "--root",
        str(root),
        "--find-links",
        str(wheelhouse),
        "--no-index",
        "--workers",
        str(workers),
        "--log-level",
        "WARNING",
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    assert process.stdout is not None
    line = process.stdout.readline()  # the server prints it once it listens, or exits
    if not line.startswith("uv-envs-server listening on "):
        process.kill()
        raise SystemExit(f"the server did not start: {line!r}")
    return process, line.rsplit(" ", 1)[1].strip()


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    main()
