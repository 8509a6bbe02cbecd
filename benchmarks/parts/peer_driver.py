"""The timed rounds of ``bench_peer.py``, run by the peer's own venv (it has its client).

    <peer venv>/bin/python benchmarks/parts/peer_driver.py --server NAME=URL ... --rounds 3

Both servers are driven by ``uv_venv_manager.integrations.client.EnvFabricClient``,
unchanged, one whole round at a time per server; the order of the servers flips
every round, so a load spike from elsewhere hits both. Prints one JSON object:
``{server: {row: [seconds per round]}}``. Each round uses a spec no server has
seen: the set with ``click`` pinned to a release of its own (a new lock, so a
new store entry for uv-envs), whose wheel the warm-up put in both uv caches.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from uv_venv_manager.integrations.client import (  # type: ignore[import-not-found]
    EnvFabricClient,
)

#: The issue's medium set: what a workflow node imports.
MEDIUM = ("requests", "rich", "pydantic", "jinja2", "click")
#: One ``click`` release per new spec: two per round (one create, the concurrent creates).
CLICKS = tuple(f"8.1.{n}" for n in range(8, -1, -1)) + tuple(f"8.0.{n}" for n in range(4, -1, -1))
IMPORTS = "import requests, rich, pydantic, click, jinja2"
#: The package ``add`` installs (its wheel is in the warm cache: the warm-up added it).
ADDED = "six"
CONCURRENT = 8
#: Reads of an existing env per round; their median is the round's figure.
ENSURES = 30

Client = Any  # EnvFabricClient, untyped outside the peer's venv


def spec(tag: int) -> list[str]:
    """The set with ``click`` pinned to release ``tag`` of :data:`CLICKS`: a new lock per tag."""
    return [*MEDIUM[:-1], f"click=={CLICKS[tag]}"]


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def first_import(client: Client, env_path: str) -> float:
    python = client.get_python_path(env_path)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return timed(lambda: subprocess.run([python, "-c", IMPORTS], check=True, env=environ, cwd="/"))


def concurrent_creates(url: str, workflow: str, packages: list[str]) -> float:
    errors: list[BaseException] = []
    barrier = threading.Barrier(CONCURRENT + 1)

    def create(i: int) -> None:
        with EnvFabricClient(url, timeout=900) as client:
            barrier.wait()
            try:
                client.create_env(workflow, f"conc-{i}", packages=packages)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(CONCURRENT)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    if errors:
        raise errors[0]
    return seconds


def one_round(url: str, tag: int) -> dict[str, float]:
    """Every row once on the server at ``url``; the keys are new for this round."""
    workflow = f"r{tag}"
    packages = spec(2 * tag)
    row: dict[str, float] = {}
    with EnvFabricClient(url, timeout=900) as client:
        started = time.perf_counter()
        created = client.create_env(workflow, "new", packages=packages)
        row["create"] = time.perf_counter() - started
        row["import"] = first_import(client, created["env_path"])
        row["ready"] = row["create"] + row["import"]
        # The same import once more: with the bytecode the first one left, where it could.
        row["import_again"] = first_import(client, created["env_path"])
        row["second_key"] = timed(lambda: client.create_env(workflow, "same", packages=packages))
        ensures = [
            timed(lambda: client.ensure_env(workflow, "new", packages=packages))
            for _ in range(ENSURES)
        ]
        row["ensure"] = statistics.median(ensures)
        row["concurrent"] = concurrent_creates(url, workflow, spec(2 * tag + 1))
        row["add"] = timed(lambda: client.add_packages(workflow, "new", [ADDED]))
        row["delete"] = timed(lambda: client.delete_env(workflow, "new"))
    return row


def warm(url: str, rounds: int) -> None:
    """One throwaway env of the set, then every ``click`` the rounds pin: fills the uv cache.

    Its locks all hold :data:`ADDED`, so none of them is a lock a round asks for.
    """
    with EnvFabricClient(url, timeout=900) as client:
        created = client.create_env("warm", "up", packages=[*MEDIUM, ADDED])
        for tag in range(2, 2 * rounds + 2):
            client.add_packages("warm", "up", [f"click=={CLICKS[tag]}"])
        subprocess.run([client.get_python_path(created["env_path"]), "-c", IMPORTS], check=True)
        client.delete_env("warm", "up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", action="append", required=True, help="NAME=URL")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if 2 * args.rounds + 2 > len(CLICKS):
        parser.error(f"at most {len(CLICKS) // 2 - 1} rounds (one click release per new spec)")
    servers = dict(item.split("=", 1) for item in args.server)
    for name, url in servers.items():
        print(f"warming {name}", file=sys.stderr, flush=True)
        warm(url, args.rounds)
    results: dict[str, dict[str, list[float]]] = {name: {} for name in servers}
    order = list(servers)
    for tag in range(1, args.rounds + 1):
        for name in order:
            print(f"round {tag}: {name}", file=sys.stderr, flush=True)
            for row, seconds in one_round(servers[name], tag).items():
                results[name].setdefault(row, []).append(seconds)
        order.reverse()
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
