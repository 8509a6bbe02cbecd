"""uv-envs against uv-venv-manager (PyPI), both driven by the latter's own client; prints markdown.

    python benchmarks/bench_peer.py [--rounds 3] [--reads 1000] [--parts table,reads] [--work DIR]

The service uv-envs grew from (issue 33) is installed from PyPI into a venv
of its own under the work folder (``uv venv`` + ``uv pip install
uv-venv-manager==0.1.1 httpx``; its client imports httpx without declaring
it), never a dependency of uv-envs. Both servers run on loopback, each with
its own root and uv cache (the peer's ``UV_CACHE_DIR`` beside its
``ENVS_BASE_PATH``, as it requires; uv-envs' cache in its root), warmed by one
throwaway env. ``parts/peer_driver.py``, run by the peer's venv, drives both
with ``EnvFabricClient`` in alternating rounds (the medians are reported);
then the reads (``--parts reads`` alone: no warm-up, a few seconds): p50/p99
of the client's GET on each, of uv-envs' other doors (``/v1`` and gRPC
``GetEnvStatus``) and of its health check, the HTTP stack's floor, taking
turns call by call, and the CPU each server spends per read. Needs PyPI.
Everything is written under ``--work`` (a temporary folder, removed at the
end, unless given); ``--out FILE`` writes the markdown there too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from uv_envs_server._generated import env_manager_pb2 as pb  # noqa: E402
from uv_envs_server._generated import env_manager_pb2_grpc as pb_grpc  # noqa: E402

PEER = "uv-venv-manager==0.1.1"
#: Its client imports httpx, which the package does not declare.
PEER_EXTRAS = ("httpx",)
#: Rows of the table: (key, label, target ratio peer / ours; None: a floor, no target).
ROWS = (
    ("create", "create, new spec", 1.0),
    ("import", "first import of the set in that env, right after the create", 1.0),
    ("ready", "ready to run (create + first import)", 1.3),
    ("import_again", "the same import again, right after (the floor of the import rows)", None),
    ("second_key", "create, same spec, another key", 10.0),
    ("ensure", "ensure of an existing env (the client's GET, median of 30)", 1.0),
    ("concurrent", "8 concurrent creates, one new spec", 1.0),
    ("add", "add one package", 1.0),
    ("delete", "delete", 1.0),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrubbed(**extra: str) -> dict[str, str]:
    """This environment without what would steer uv or Python, plus ``extra``."""
    drop = ("UV_", "VIRTUAL_ENV", "PYTHON")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)} | extra


def peer_venv(work: Path) -> Path:
    """The peer's venv (made once per work folder): its python."""
    venv = work / "peer-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        uv = shutil.which("uv") or "uv"
        subprocess.run([uv, "venv", "-q", "--python", "3.11", str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(python), PEER, *PEER_EXTRAS],
            check=True,
            env=scrubbed(),
        )
    return python


def wait_http(url: str, process: subprocess.Popen[bytes], path: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {process.returncode}")
        try:
            httpx.get(url + path, timeout=2)
        except httpx.HTTPError:
            time.sleep(0.2)
        else:
            return
    raise RuntimeError(f"no answer from {url}")


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextmanager
def serving(command: list[str], environ: dict[str, str], url: str, log: Path) -> Iterator[Server]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=environ, stdout=out, stderr=out, cwd=log.parent)
        try:
            wait_http(url, process, "/docs")
            yield Server(url, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def peer_server(python: Path, work: Path) -> tuple[list[str], dict[str, str], str]:
    data = work / "peer"
    (data / "envs").mkdir(parents=True, exist_ok=True)
    port = free_port()
    uv_bin = str(Path(shutil.which("uv") or "uv").parent)
    environ = scrubbed(
        HOST="127.0.0.1",
        PORT=str(port),
        GRPC_PORT=str(free_port()),
        DATA_ROOT=str(data),
        ENVS_BASE_PATH=str(data / "envs"),
        UV_CACHE_DIR=str(data / "uv_cache"),
        DATABASE_URL=f"sqlite:///{data / 'audit.db'}",
        EXECUTION_TIMEOUT="900",
        PATH=f"{uv_bin}:{os.environ.get('PATH', '')}",  # the same uv for both servers
    )
    command = [str(python), "-m", "uv_venv_manager.main"]
    return command, environ, f"http://127.0.0.1:{port}"


def our_server(work: Path) -> tuple[list[str], dict[str, str], str, str]:
    port, grpc_port = free_port(), free_port()
    command = [
        *(sys.executable, "-m", "uv_envs_server", "--root", str(work / "ours" / "root")),
        *("--port", str(grpc_port), "--http-port", str(port), "--ray", "off"),
    ]  # its default log level, as the peer's: both log every request
    (work / "ours").mkdir(parents=True, exist_ok=True)
    environ = scrubbed(PYTHONPATH=str(ROOT))  # this checkout's uv-envs
    return command, environ, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process ``pid`` has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


Reads = dict[str, tuple[list[float], float]]


def bench_reads(peer: Server, ours: Server, target: str, calls: int) -> Reads:
    """Per door: milliseconds of each read of one READY env, and server CPU ms per read.

    The doors take turns call by call, so a load spike from elsewhere on the
    machine lands on all of them; the CPU each server spent is measured apart,
    door by door, as it does not depend on what else runs.
    """
    peer_http = httpx.Client(base_url=peer.url, timeout=30)
    our_http = httpx.Client(base_url=ours.url, timeout=30)
    channel = grpc.insecure_channel(target)
    stub = pb_grpc.EnvManagerServiceStub(channel)
    packages = {"workflow_id": "reads", "node_id": "env", "packages": ["six"]}
    for client in (peer_http, our_http):
        client.post("/envs", data=packages).raise_for_status()
    request = pb.GetEnvStatusRequest(workflow_id="reads", node_id="env")
    doors: dict[str, tuple[Callable[[], object], int]] = {
        "peer GET /envs/{w}/{n}": (
            lambda: peer_http.get("/envs/reads/env").raise_for_status(),
            peer.pid,
        ),
        "uv-envs GET /envs/{w}/{n}": (
            lambda: our_http.get("/envs/reads/env").raise_for_status(),
            ours.pid,
        ),
        "uv-envs GET /v1/envs/{w}/{n}/@": (
            lambda: our_http.get("/v1/envs/reads/env/@").raise_for_status(),
            ours.pid,
        ),
        "uv-envs gRPC GetEnvStatus": (
            lambda: stub.GetEnvStatus(request, timeout=30),
            ours.pid,
        ),
        # The floor of the HTTP doors: the same server's stack with no core call behind it.
        "uv-envs GET /v1/health (no core call)": (
            lambda: our_http.get("/v1/health").raise_for_status(),
            ours.pid,
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in doors}
    cpu: dict[str, float] = {}
    try:
        for call, _ in doors.values():
            for _ in range(20):
                call()  # connect, and let each server reach its steady state
        for _ in range(calls):
            for name, (call, _) in doors.items():
                started = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - started) * 1000)
        for name, (call, pid) in doors.items():
            before = cpu_seconds(pid)
            for _ in range(calls):
                call()
            cpu[name] = (cpu_seconds(pid) - before) * 1000 / calls
    finally:
        peer_http.close()
        our_http.close()
        channel.close()
    return {name: (samples[name], cpu[name]) for name in doors}


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 0.1 else f"{value:.3f} s"


def table(rows: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = [
        "| operation | uv-venv-manager | uv-envs | peer / ours | target | met |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for key, label, target in ROWS:
        peer = statistics.median(rows["peer"][key])
        ours = statistics.median(rows["ours"][key])
        ratio = peer / ours
        if target is None:
            goal, met = "", ""
        else:
            goal, met = f"≥{target:g}x", "yes" if ratio >= target else "**no**"
        cells = (label, _seconds(peer), _seconds(ours), f"{ratio:.2f}x", goal, met)
        lines.append(f"| {' | '.join(cells)} |")
    return lines


def reads_table(reads: Reads) -> list[str]:
    lines = [
        "| read of a READY env | p50 | p99 | server CPU per read |",
        "|---|---:|---:|---:|",
    ]
    for name, (samples, cpu) in reads.items():
        p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
        lines.append(f"| {name} | {p50:.2f} ms | {p99:.2f} ms | {cpu:.2f} ms |")
    return lines


def report(
    rows: dict[str, dict[str, list[float]]] | None,
    reads: Reads | None,
    rounds: int,
    load: tuple[float, float],
) -> str:
    machine = (
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Linux {platform.release()}; "
        f"Python {platform.python_version()}; {PEER} against this checkout; median of "
        f"{rounds} alternating rounds; load average {load[0]:.2f} before, {load[1]:.2f} after."
    )
    lines = [machine]
    if rows is not None:
        lines += ["", *table(rows)]
    if reads is not None:
        lines += ["", *reads_table(reads)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reads", type=int, default=1000, help="reads per door")
    parser.add_argument("--parts", default="table,reads", help="table (the operations), reads")
    parser.add_argument("--work", type=Path, help="work folder, kept (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="uv-envs-bench-peer-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        python = peer_venv(work)
        peer_cmd, peer_env, peer_url = peer_server(python, work)
        our_cmd, our_env, our_url, target = our_server(work)
        load_before = os.getloadavg()[0]
        with (
            serving(peer_cmd, peer_env, peer_url, work / "peer.log") as peer,
            serving(our_cmd, our_env, our_url, work / "ours" / "server.log") as ours,
        ):
            rows, reads = None, None
            if "table" in args.parts:
                driver = [str(python), str(HERE / "parts" / "peer_driver.py")]
                driver += ["--server", f"peer={peer_url}", "--server", f"ours={our_url}"]
                driver += ["--rounds", str(args.rounds)]
                done = subprocess.run(driver, check=True, stdout=subprocess.PIPE, env=scrubbed())
                rows = json.loads(done.stdout)
            if "reads" in args.parts:
                reads = bench_reads(peer, ours, target, args.reads)
        markdown = report(rows, reads, args.rounds, (load_before, os.getloadavg()[0]))
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown)
    if args.out:
        args.out.write_text(markdown + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
