"""Starting a test Ray cluster: the one way every Ray test and benchmark does it.

``started_cluster(prefix, start)`` gives a cluster a folder of its own under the
run's temp folder (``TMPDIR``; short, for the 107-byte limit of AF_UNIX socket
paths Ray puts under it), with ``RAY_TMPDIR`` pointing at it so nothing lands in
``/tmp/ray``. It calls ``start(base, stack)``, which starts the cluster there and
pushes its teardown onto ``stack``. A start that raises is torn down, its folder
removed, and tried once more from a new folder; when that fails too,
``ClusterStartFailed`` says why: each attempt's error, the tails of its raylet,
GCS and node logs (``logs/`` and ``logs/old/``) and its process table. At the end,
whatever happens, the teardown runs, every process still naming the folder is
killed and the folder is removed.

``local_cluster`` is the ``ray.cluster_utils.Cluster`` of a test: head on
127.0.0.1 with ports of its own, nodes added with a wait that fits 2 busy cores.

Why a failed start is tried again rather than waited for: Ray 2.60 waits a fixed
30 s for a new node's raylet to register (``raylet_start_wait_time_s = 30`` in
``ray/_private/node.py``, not read from the environment although its own error
message says ``RAY_raylet_start_wait_time_s``; see
https://github.com/ray-project/ray/issues/47087). Within those 30 s the raylet
registers only once the Python dashboard agent it spawns has written its port
files (``WaitForDashboardAgentPorts``; measured: 8.7 s of the agent's imports at
load 10 on 2 cores; https://github.com/ray-project/ray/issues/65983), so a busy
machine eats into them. A raylet that dies before it opens its log leaves no
trace but its exit status (its stdout and stderr go to /dev/null); see
``exit_statuses`` and ``diagnosis``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

T = TypeVar("T")

#: Seconds a node may take to register once Ray's own 30 s are over; a loaded 2-core
#: machine (the CI runner beside other jobs) can take a minute.
START_TIMEOUT = 120.0
#: A failed start is tried once more, from a clean folder.
ATTEMPTS = 2
#: Linux's sun_path holds 108 bytes with the NUL.
SOCKET_PATH_MAX = 107
#: The longest path Ray puts under a cluster's folder: temp dir ``t``, the session
#: (date, microseconds, a pid up to 7 digits), a node's plasma socket.
RAY_SOCKET_TAIL = len("/t/session_2026-12-07_16-22-27_235708_4194304/sockets/plasma_store.99")
#: Lines of each log in a failure's description.
TAIL_LINES = 30


class ClusterStartFailed(RuntimeError):
    """A test Ray cluster did not start, twice; the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (Ray's fixed defaults collide between clusters)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def short_folder(prefix: str) -> Path:
    """A new folder under the run's temp folder, short enough for Ray's socket paths."""
    parent = tempfile.gettempdir()
    longest = len(parent) + 1 + len(prefix) + 8 + RAY_SOCKET_TAIL  # mkdtemp adds 8 characters
    if longest > SOCKET_PATH_MAX:
        msg = (
            f"the temp folder {parent} is too long for Ray's socket paths ({longest} bytes "
            f"> {SOCKET_PATH_MAX}): run with a shorter TMPDIR"
        )
        raise ClusterStartFailed(msg)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))


@contextlib.contextmanager
def ray_folder(prefix: str) -> Iterator[Path]:
    """A fresh cluster folder, ``RAY_TMPDIR`` pointing at it; gone at the end, with its processes.

    The ``RAY_*`` variables of this process are as before at the end.

    cluster_utils writes ``<RAY_TMPDIR>/ray/ray_current_cluster`` whatever the temp dir
    says, and fails where that folder does not exist: it is made here.
    """
    base = short_folder(prefix)
    # Ray sets some of its variables in this process too (RAY_CLIENT_MODE): all go back.
    previous = {k: v for k, v in os.environ.items() if k.startswith("RAY_")}
    os.environ["RAY_TMPDIR"] = str(base)
    try:
        (base / "ray").mkdir()
        yield base
    finally:
        for name in [k for k in os.environ if k.startswith("RAY_")]:
            del os.environ[name]
        os.environ.update(previous)
        kill_processes_of(base)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def started_cluster(
    prefix: str, start: Callable[[Path, contextlib.ExitStack[Any]], T], *, attempts: int = ATTEMPTS
) -> Iterator[T]:
    """What ``start(base, stack)`` returns, started in its own folder, tried ``attempts`` times.

    Only the start is tried again: an error in the ``with`` body tears the cluster
    down and propagates.
    """
    failures: list[str] = []
    for attempt in range(1, attempts + 1):
        with ray_folder(prefix) as base, contextlib.ExitStack() as stack:
            began = time.monotonic()
            try:
                cluster = start(base, stack)
            except Exception as exc:  # Ray raises bare Exception; the error says which
                took = time.monotonic() - began
                why = f"{exc!r}\n{exit_statuses(exc)}{diagnosis(base)}"
                failures.append(f"attempt {attempt} ({took:.0f} s): {why}")
                continue
            yield cluster
            return
    tries = f"{attempts} attempts" if attempts > 1 else "1 attempt"
    msg = f"the Ray cluster did not start in {tries}:\n\n" + "\n\n".join(failures)
    raise ClusterStartFailed(msg)


def local_cluster(
    base: Path,
    stack: contextlib.ExitStack[Any],
    head_env: Mapping[str, str],
    *,
    timeout: float = START_TIMEOUT,
    **head_args: object,
) -> Cluster:
    """A ``cluster_utils`` head (one CPU, no dashboard, 127.0.0.1) in ``base``; ``stack`` stops it.

    Its ports are its own: Ray's defaults (dashboard agent 52365, API server 8265)
    are the same for every cluster on the machine. ``head_args`` go to Ray's
    ``RayParams`` over these.
    """
    from ray.cluster_utils import Cluster  # Ray is optional for the suite

    cluster = Cluster(shutdown_at_exit=True)
    stack.callback(cluster.shutdown)
    args: dict[str, Any] = {
        "num_cpus": 1,
        "include_dashboard": False,
        "node_ip_address": "127.0.0.1",
        "temp_dir": str(base / "t"),
        "env_vars": dict(head_env),
        "gcs_server_port": free_port(),
        "dashboard_agent_listen_port": free_port(),
        "dashboard_port": free_port(),
    }
    cluster.add_node(**args | head_args)
    cluster.wait_for_nodes(timeout=timeout)
    return cluster


def kill_processes_of(base: Path) -> None:
    """SIGKILL every process whose command line names ``base`` (the cluster's own folder).

    Ray's daemons (GCS, raylets, agents, workers) all name their session folder; a
    cluster that failed to start or whose driver died leaves them behind.
    """
    for _ in range(3):
        victims = [pid for pid, argv in _processes() if _names(argv, base) and pid != os.getpid()]
        if not victims:
            return
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _names(argv: bytes, base: Path) -> bool:
    """Whether a command line names ``base`` or a path under it (not ``base`` + more letters)."""
    needle = os.fsencode(base)
    return needle + b"/" in argv or needle + b"\0" in argv or argv.endswith(needle)


def _command(argv: bytes, width: int = 200) -> str:
    return argv.replace(b"\0", b" ").decode(errors="replace")[:width]


def exit_statuses(error: BaseException) -> str:
    """The processes of the Ray node whose start raised ``error``, with their exit statuses.

    ``ray._private.node.Node`` raises from its ``__init__``, so the node (and the
    ``Popen`` of its raylet, whose own output went to /dev/null) is only reachable
    through the traceback.
    """
    lines = []
    trace = error.__traceback__
    while trace is not None:
        node = trace.tb_frame.f_locals.get("self")
        processes = getattr(node, "all_processes", None)
        if trace.tb_frame.f_code.co_name == "__init__" and isinstance(processes, dict):
            for kind, infos in processes.items():
                for info in infos:
                    code = info.process.poll()
                    state = "running" if code is None else f"exited with {code}"
                    lines.append(f"{kind} (pid {info.process.pid}) {state}")
        trace = trace.tb_next
    return "".join(f"{line}\n" for line in lines)


def _processes() -> list[tuple[int, bytes]]:
    """Every process's pid and command line (NUL-separated), from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                found.append((int(entry.name), (entry / "cmdline").read_bytes()))
    return found


def diagnosis(base: Path, lines: int = TAIL_LINES) -> str:
    """Why a cluster in ``base`` may not have started: its logs' tails and its processes.

    A raylet that dies before it opens ``raylet.out`` (its stdout and stderr go to
    /dev/null) shows only as missing from the process table and its log list.
    """
    parts = []
    logs = sorted(base.glob("**/logs/*.*")) + sorted(base.glob("**/logs/old/*.*"))
    logs += sorted(base.glob("*.log"))  # ray start --block's own output (namespaced nodes)
    wanted = ("raylet", "gcs_server", "runtime_env_agent", "dashboard_agent")
    names = [log.name for log in logs]
    parts.append(f"log files: {', '.join(names) or 'none'}")
    if not any(name.startswith("raylet") for name in names):
        parts.append("no raylet log: the raylet never started or died before opening it")
    for log in logs:
        if log.name.startswith(wanted) or log.parent == base:
            text = log.read_text(errors="replace").splitlines()[-lines:]
            if text:
                parts.append(f"--- {log.relative_to(base)} (last {len(text)} lines)")
                parts.extend(text)
    table = [f"{pid} {_command(argv)}" for pid, argv in _processes() if _names(argv, base)]
    parts.append(f"--- processes naming {base}: {len(table)}")
    parts.extend(table)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    parts.append(f"--- load average {load} on {os.cpu_count()} CPUs")
    return "\n".join(parts)
