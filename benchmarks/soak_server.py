"""The server process the soak and trial benchmarks start, kill and start again."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from bench_grpc import ROOT, _percentile

sys.path.insert(0, str(ROOT))

SPECS = (["alpha<2"], ["alpha>=2"])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``python -m uv_envs_server`` (gRPC and HTTP) on one root, started again at will."""

    def __init__(self, base: Path, wheelhouse: Path) -> None:
        self.root = base / "root"
        self.wheelhouse = wheelhouse
        self.port, self.http_port = _free_port(), _free_port()
        self.grpc = f"127.0.0.1:{self.port}"
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.process: subprocess.Popen[str] | None = None
        #: Per start: seconds until the server said it listens (start-up recovery done).
        self.listening_after: list[float] = []
        #: Per start: seconds the server's start-up recover() took, as it logs them.
        self.recovery_seconds: list[float] = []

    def start(self) -> float:
        """Start it; return seconds until health answers (see :attr:`listening_after`)."""
        started = time.monotonic()
        command = [
            *(sys.executable, "-m", "uv_envs_server", "--root", str(self.root)),
            *("--port", str(self.port), "--http-port", str(self.http_port)),
            *("--no-index", "--find-links", str(self.wheelhouse), "--log-level", "INFO"),
        ]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.root.parent,
            text=True,
        )
        listening: list[float] = []
        threading.Thread(target=self._watch, args=(started, listening), daemon=True).start()
        threading.Thread(target=self._read_log, args=(self.process,), daemon=True).start()
        while time.monotonic() - started < 120:
            try:
                httpx.get(f"{self.http}/v1/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                time.sleep(0.02)
        else:
            raise RuntimeError("the server did not start within 120 s")
        answered = time.monotonic() - started
        # The CLI prints "listening" once its start-up recover() is done and gRPC is bound.
        self.listening_after.append(listening[0] if listening else answered)
        return answered

    def _watch(self, started: float, listening: list[float]) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "listening" in line and not listening:
                listening.append(time.monotonic() - started)

    def _read_log(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        for line in process.stderr:  # read all of it: a full pipe would stall the server
            if "start-up recovery took" in line:
                self.recovery_seconds.append(float(line.split("took ")[1].split()[0]))

    def rss_mb(self) -> float:
        """The server's resident set size, in MB (0 when it is not running)."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def kill(self) -> None:
        """SIGKILL, as a crash or an OOM kill would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(60)


def summary(samples: list[float]) -> str:
    if not samples:
        return "-"
    return f"{_percentile(samples, 0.5):.1f} / {_percentile(samples, 0.99):.1f}"
