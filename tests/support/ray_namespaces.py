"""A Ray cluster on one host whose worker nodes do not share the root's files: separate machines.

The head runs in this host's mount namespace (where the uv-envs server runs
too). Each worker node runs ``ray start`` in a mount namespace of its own
(``unshare --mount --propagation private``, root only) in which a per-node
folder is bind-mounted over the served roots' folder, another over Ray's temp
folder (its sessions), and optionally empty folders over other paths (a
wheelhouse that node cannot see). So a file the
server writes under the root does not exist on the other nodes, exactly as
on separate machines. Every node listens on 127.0.0.2: Ray rewrites
127.0.0.1 to the host's routable address once multi-node ``ray start`` is
allowed, and every byte of the test cluster must stay on 127.0.0.0/8.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import attrs
import pytest

from . import ray_start

NODE_IP = "127.0.0.2"
#: Seconds a node may take to start and register with the head.
START_TIMEOUT = ray_start.START_TIMEOUT
START_ATTEMPTS = 3
#: What ``ray start --block`` prints once its node runs.
STARTED = "This command will now block forever"


def require_isolation() -> None:
    """Skip the test where nodes cannot be isolated (fail it under UV_ENVS_REQUIRE_RAY)."""
    reason = can_isolate()
    if reason is not None:
        if os.environ.get("UV_ENVS_REQUIRE_RAY"):
            pytest.fail(f"UV_ENVS_REQUIRE_RAY is set but {reason}")
        pytest.skip(reason)


def can_isolate() -> str | None:
    """Why per-node mount namespaces cannot be made here (None when they can)."""
    if sys.platform != "linux":
        return "mount namespaces are Linux only"
    if os.geteuid() != 0:
        return "mount namespaces for the nodes need root"
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"unshare --mount fails here: {probe.stderr.strip()}"
    return None


def free_port() -> int:
    """A TCP port free on the nodes' address."""
    return ray_start.free_port(NODE_IP)


def ray_env(base: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment of every Ray process of the test cluster."""
    env = dict(os.environ)
    env.update(
        {
            "RAY_TMPDIR": str(base),  # never the machine's /tmp/ray
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",  # lets `ray start --address` add nodes
            **extra,
        }
    )
    return env


@attrs.define
class Node:
    """One ``ray start --block`` process group."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """Kill the node's whole process group (``ray start --block`` takes ~40 s on SIGTERM)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=30)


@attrs.define
class NamespacedCluster:
    """Head here, workers each in their own mount namespace over ``private``."""

    base: Path
    #: Every node sees its own folder here; served roots go under it.
    private: Path
    env: dict[str, str]
    port: int = attrs.field(factory=free_port)
    nodes: list[Node] = attrs.field(factory=list)

    @property
    def temp_dir(self) -> Path:
        """Ray's temp folder (its sessions); each worker has its own at this path."""
        return self.base / "t"

    @property
    def address(self) -> str:
        """The GCS address drivers and servers join."""
        return f"{NODE_IP}:{self.port}"

    def _start(self, name: str, argv: list[str], env: Mapping[str, str]) -> Node:
        log = self.base / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=dict(env), start_new_session=True
            )
        node = Node(name, process, log)
        self.nodes.append(node)
        return node

    def start_head(self) -> Node:
        """The head node, in this host's namespace: it sees the server's root."""
        ray = str(Path(sys.executable).parent / "ray")
        argv = [
            ray, "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address", NODE_IP, "--port", str(self.port), "--node-name", "head",
            "--num-cpus", "1", "--include-dashboard", "false",
            "--temp-dir", str(self.temp_dir),
            "--dashboard-agent-listen-port", "0",
            "--ray-client-server-port", str(free_port()),
        ]  # fmt: skip
        return self._started("head", argv, self.env)

    def add_worker(
        self,
        name: str,
        *,
        hidden: Iterable[Path] = (),
        read_only: Iterable[Path] = (),
        env: Mapping[str, str] | None = None,
    ) -> Node:
        """A worker node whose ``private`` folder is its own; ``hidden`` paths look empty there."""
        own = self.base / "nodes" / name
        own.mkdir(parents=True, exist_ok=True)
        # Ray's session folder too is the node's own, as on its own disk (Ray's uv and pip
        # fields build there, by the same path on every node).
        session = own.parent / f"{name}-temp"
        session.mkdir(exist_ok=True)
        mounts = [f"mount --bind {own} {self.private}", f"mount --bind {session} {self.temp_dir}"]
        for index, path in enumerate(hidden):
            empty = own.parent / f"{name}-hidden-{index}"
            empty.mkdir(exist_ok=True)
            mounts.append(f"mount --bind {empty} {path}")
        mounts.extend(f"mount --bind {p} {p} && mount -o remount,ro,bind {p}" for p in read_only)
        ray = str(Path(sys.executable).parent / "ray")
        start = (
            f"exec {ray} start --block --disable-usage-stats --address {self.address} "
            f"--node-ip-address {NODE_IP} --node-name {name} --num-cpus 1 "
            "--dashboard-agent-listen-port 0"
        )
        script = " && ".join([*mounts, start])
        argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]
        return self._started(name, argv, env if env is not None else self.env)

    def _started(self, name: str, argv: list[str], env: Mapping[str, str]) -> Node:
        """Start a node and wait until it runs; on a loaded host a raylet can time out
        registering with a head that only just started, so a node that exits is started again.
        """
        for _ in range(START_ATTEMPTS):
            node = self._start(name, argv, env)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and node.process.poll() is None:
                if STARTED in node.log.read_text(errors="replace"):
                    return node
                time.sleep(0.3)
            node.kill()
            self.nodes.remove(node)
        msg = f"node {name} did not start {START_ATTEMPTS} times:\n{ray_start.diagnosis(self.base)}"
        raise RuntimeError(msg)

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """The head started; at the end every node stopped (the driver first)."""
        import ray

        try:
            self.start_head()
            yield
        finally:
            ray.shutdown()
            self.shutdown()

    def node_copy(self, name: str, path: str) -> Path:
        """Where worker node ``name``'s copy of ``path`` (under the private folder) really is."""
        return self.base / "nodes" / name / Path(path).relative_to(self.private)

    def shutdown(self) -> None:
        """Kill every node, then whatever Ray process of this cluster is left."""
        for node in reversed(self.nodes):
            node.kill()
        # Workers that left their group (Ray's own daemons) still name the base in argv.
        ray_start.kill_processes_of(self.base)
