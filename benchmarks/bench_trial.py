"""The load and kill -9 trial of issue 18: clients of both wires while the server dies.

Run through ``benchmarks/bench_soak.py --parts trial``. Each client owns three
keys and remembers what it last wrote to them; every answer is checked against
that, and after the last restart every key is checked on disk. A call the
server did not answer (it was down) is an outage, not a wrong answer; a write
without an answer makes its key unknown until the client writes it again.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

import httpx
from soak_server import SPECS, Server, summary

import uv_envs
from uv_envs_server import EnvManagerClient, HttpEnvClient, RemoteEnvManager

if TYPE_CHECKING:
    from pathlib import Path


class Trial:
    """Clients that each own three keys and know what they last wrote to them."""

    def __init__(self, server: Server, deadline: float) -> None:
        self.server = server
        self.deadline = deadline
        self.latency: defaultdict[str, list[float]] = defaultdict(list)
        self.outcomes: Counter[str] = Counter()
        self.wrong: list[str] = []
        self.expected: dict[str, int | None] = {}  # node -> SPECS index; None: deleted
        self._lock = threading.Lock()

    def client(self, number: int) -> None:
        wire = "grpc" if number % 2 else "http"
        rng = random.Random(number)  # noqa: S311 - a reproducible mix, not a secret
        grpc_client = EnvManagerClient(self.server.grpc, timeout=300)
        http_client = HttpEnvClient(self.server.http, timeout=300)
        mine: dict[str, int | None] = {}  # node -> spec index, None: deleted; absent: unknown
        try:
            while time.monotonic() < self.deadline:
                node = f"c{number}-{rng.randrange(3)}"
                kind = rng.choices(["status", "ensure", "delete", "read"], [50, 30, 5, 15])[0]
                spec = rng.randrange(2)
                started = time.perf_counter()
                try:
                    seen = self._call(wire, kind, node, spec, grpc_client, http_client)
                except Exception as exc:  # noqa: BLE001 - every failure is sorted and counted
                    if _outage(exc):
                        self._count(kind, "unavailable", None)
                        if kind in {"ensure", "delete"}:
                            mine.pop(node, None)  # it may or may not have happened
                        time.sleep(0.05)  # the server is restarting: no busy loop
                        continue
                    # NOT_FOUND is right for a key deleted, or never known to be written.
                    if not (
                        isinstance(exc, uv_envs.EnvironmentNotFound) and mine.get(node) is None
                    ):
                        self._wrong(f"{wire} {kind} {node}: {type(exc).__name__}: {exc}"[:300])
                        continue
                    seen = None  # a read of an env this client deleted: right
                self._count(f"{wire} {kind}", "ok", (time.perf_counter() - started) * 1000)
                if kind == "ensure":
                    mine[node] = spec
                elif kind == "delete":
                    mine[node] = None
                elif node in mine and seen != ("present" if mine[node] is not None else None):
                    self._wrong(f"{wire} {kind} {node}: saw {seen}, wrote {mine[node]}")
        finally:
            grpc_client.close()
            http_client.close()
        with self._lock:
            self.expected.update(mine)

    def _call(
        self,
        wire: str,
        kind: str,
        node: str,
        spec: int,
        grpc_client: EnvManagerClient,
        http_client: HttpEnvClient,
    ) -> str | None:
        # One contract (RemoteEnvManager), either wire.
        client: RemoteEnvManager = grpc_client if wire == "grpc" else http_client
        key = uv_envs.EnvKey("trial", node)
        if kind == "ensure":
            client.ensure(key, SPECS[spec])
            return "present"
        if kind == "delete":
            client.delete(key)
            return None
        if kind == "status":
            try:
                client.get(key)
            except uv_envs.EnvironmentNotFound:
                return None
            return "present"
        client.dependencies(key)
        return "present"

    def _count(self, kind: str, outcome: str, elapsed: float | None) -> None:
        with self._lock:
            self.outcomes[outcome] += 1
            if elapsed is not None:
                self.latency[kind].append(elapsed)

    def _wrong(self, what: str) -> None:
        with self._lock:
            self.outcomes["wrong"] += 1
            self.wrong.append(what)


def _outage(exc: BaseException) -> bool:
    """A failure while the server is down or restarting: no answer, not a wrong one."""
    if isinstance(exc, (httpx.TransportError, uv_envs.EnvironmentBusy)):
        return True
    return any(code in str(exc) for code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"))


def _state(manager: uv_envs.EnvManager, node: str) -> int | None:
    """Which of SPECS the env has now; None when there is none."""
    report = manager.status(uv_envs.EnvKey("trial", node))
    if report.environment is None:
        return None
    packages = list(report.environment.spec.packages)
    return SPECS.index(packages) if packages in SPECS else -1


def bench_trial(base: Path, wheelhouse: Path, seconds: float, clients: int, kills: int) -> str:
    server = Server(base / "trial", wheelhouse)
    server.root.mkdir(parents=True)
    server.start()
    deadline = time.monotonic() + seconds
    trial = Trial(server, deadline)
    threads = [threading.Thread(target=trial.client, args=(n,)) for n in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    recoveries: list[float] = []
    rss: list[tuple[float, float]] = []
    kill_at = [started + seconds * (k + 1) / (kills + 1) for k in range(kills)]
    while any(t.is_alive() for t in threads):
        rss.append((time.monotonic() - started, server.rss_mb()))
        if kill_at and time.monotonic() >= kill_at[0]:
            kill_at.pop(0)
            server.kill()
            recoveries.append(server.start())
        time.sleep(1)
    server.stop()
    manager = uv_envs.EnvManager(uv_envs.Settings(root=server.root))
    lost = [node for node, spec in trial.expected.items() if _state(manager, node) != spec]
    statuses = Counter(str(e.status) for e in manager.list_environments("trial"))
    rows = "\n".join(
        f"| {kind} | {len(samples)} | {summary(samples)} |"
        for kind, samples in sorted(trial.latency.items())
    )
    curve = ", ".join(f"{t:.0f} s: {r:.0f}" for t, r in rss[:: max(1, len(rss) // 12)])
    wrong = "\n".join(f"- {w}" for w in trial.wrong[:10])
    return (
        f"{clients} clients (half gRPC, half HTTP), {seconds:.0f} s, {kills} kill -9\n\n"
        f"| kind | operations | p50 / p99 ms |\n|---|---|---|\n{rows}\n\n"
        f"outcomes: {dict(trial.outcomes)}; lost writes: {len(lost)}; "
        f"recovery after each kill (s): {', '.join(f'{r:.2f}' for r in recoveries)} "
        f"(listening after {', '.join(f'{r:.2f}' for r in server.listening_after[1:])}; "
        f"recover() {', '.join(f'{r:.2f}' for r in server.recovery_seconds[1:])}); "
        f"env statuses at the end: {dict(statuses)}\n\nRSS (MB): {curve}\n\n{wrong}"
    )
