"""WTB's own flow on a cluster whose nodes do not share the server's files, late joiners included.

A real ``uv-envs-server --ray-address`` serves a real Ray cluster: the head
here, each worker node in a mount namespace of its own in which the served
roots are another folder (:mod:`tests.support.ray_namespaces`), as on separate
machines. The client does what WTB does: ``CreateEnv`` over gRPC, then
``python_path = env_path + "/.venv/bin/python"`` and a runtime env of only
``py_executable`` and ``env_vars``. Every ``ray.get`` has a timeout.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

if importlib.util.find_spec("ray") is None:
    if os.environ.get("UV_ENVS_REQUIRE_RAY"):
        raise RuntimeError("UV_ENVS_REQUIRE_RAY is set but ray is not installed")
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

import ray
import ray.cloudpickle
from ray.exceptions import RuntimeEnvSetupError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tests.support.ray_namespaces import NODE_IP, NamespacedCluster, ray_env, require_isolation
from tests.support.ray_start import started_cluster
from tests.support.server_process import SOURCE_ROOT
from tests.support.wheelhouse import build_wheel
from uv_envs import (
    DeleteStatus,
    EnvironmentNotFound,
    EnvKey,
    ProcScanner,
    RayNodeUnusable,
    RayPythonMismatch,
)
from uv_envs.ray import plugin_config
from uv_envs.ray._replica import NodeFacts, check_python
from uv_envs_server import EnvManagerClient, HttpEnvClient
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated.env_manager_pb2_grpc import EnvManagerServiceStub

pytestmark = pytest.mark.ray

TIMEOUT = 240  # seconds for any ray.get: five raylets share two cores
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]


def where(*modules: str) -> dict[str, Any]:
    """Where this worker runs, and the versions it imports."""
    import importlib.metadata

    return {
        "executable": sys.executable,
        "virtual_env": os.environ.get("VIRTUAL_ENV"),
        "node": ray.get_runtime_context().get_node_id(),
        "versions": {name: importlib.metadata.version(name) for name in modules},
    }


@ray.remote(num_cpus=0)
class Probe:
    def where(self, *modules: str) -> dict[str, Any]:
        return where(*modules)


@ray.remote(num_cpus=0)
def exists(path: str) -> bool:
    return Path(path).exists()


def wtb_runtime_env(env_path: str) -> dict[str, Any]:
    """What WTB's code builds from ``env_path`` (it is fixed; nothing else is passed)."""
    return {
        "py_executable": env_path + "/.venv/bin/python",
        "env_vars": {"VIRTUAL_ENV": env_path + "/.venv"},
    }


def pinned(node_id: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def node_ids() -> dict[str, str]:
    """Node name -> id of the alive nodes."""
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return {str(n["NodeName"]): str(n["NodeID"]) for n in nodes if n["Alive"]}


def wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.5)


def actor_where(env_path: str, node_id: str, *modules: str) -> dict[str, Any]:
    """WTB's actor, pinned to one node, reporting where it runs."""
    actor = Probe.options(  # type: ignore[attr-defined]
        runtime_env=wtb_runtime_env(env_path), scheduling_strategy=pinned(node_id)
    ).remote()
    try:
        return dict(ray.get(actor.where.remote(*modules), timeout=TIMEOUT))
    finally:
        ray.kill(actor)


class ServerProcess:
    """``uv-envs-server --ray-address`` with gRPC and HTTP on loopback."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uv_envs_server", "--port", "0", "--http-port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.target = self._line("uv-envs-server listening on ")
        self.url = self._line("uv-envs-server HTTP listening on ") if self.target else ""

    def _line(self, prefix: str) -> str:
        assert self.process.stdout is not None
        reader = futures.ThreadPoolExecutor(1)
        try:
            line = reader.submit(self.process.stdout.readline).result(timeout=TIMEOUT)
        finally:
            reader.shutdown(wait=False)
        return line.rsplit(" ", 1)[1].strip() if line.startswith(prefix) else ""

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            _, stderr = self.process.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, stderr = self.process.communicate()
        return stderr


class Setup:
    """The cluster, what the nodes see and the server serving it."""

    def __init__(self, cluster: NamespacedCluster, private_wheels: Path) -> None:
        self.cluster = cluster
        self.private_wheels = private_wheels
        self.servers: list[ServerProcess] = []

    def serve(self, root: Path, *extra: str) -> ServerProcess:
        args = ["--root", str(root), "--ray-address", self.cluster.address, *extra]
        server = ServerProcess(args, self.cluster.env)
        self.servers.append(server)
        return server

    def node_copy(self, name: str, path: str) -> Path:
        return self.cluster.node_copy(name, path)


@pytest.fixture(scope="module")
def setup(wheelhouse: Path) -> Iterator[Setup]:
    require_isolation()
    with started_cluster("rs", lambda base, stack: _cluster(base, stack, wheelhouse)) as state:
        yield state


def _cluster(base: Path, stack: contextlib.ExitStack[Any], wheelhouse: Path) -> Setup:
    """Head + n1 (a read-only folder) + n2 (cannot see the private wheels); ``stack`` stops them."""
    private = base / "served"
    private.mkdir()
    (base / "ro").mkdir()
    # A wheel that only the head and n1 can see: a lock n2 cannot install.
    private_wheels = base / "private-wheels"
    private_wheels.mkdir()
    build_wheel(private_wheels, "onlyhere", "1.0")
    python_path = [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]
    env = ray_env(
        base,
        {
            "RAY_RUNTIME_ENV_PLUGINS": plugin_config(),
            "UV_ENVS_FIND_LINKS": f"{wheelhouse} {private_wheels}",
            "UV_ENVS_NO_INDEX": "1",
            # What docs/ray.md asks of every node: Ray replays a failed setup 5 s, not 600 s.
            "BAD_RUNTIME_ENV_CACHE_TTL_SECONDS": "5",
            "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
        },
    )
    env.pop("UV_ENVS_CACHE_DIR", None)  # each node's cache is in its own root, as on its own disk
    env.pop("UV_ENVS_ROOT", None)
    cluster = NamespacedCluster(base=base, private=private, env=env)
    state = Setup(cluster, private_wheels)
    stack.enter_context(cluster.session())
    cluster.add_worker("n1", read_only=[base / "ro"])
    cluster.add_worker("n2", hidden=[private_wheels])
    ray.init(address=cluster.address, log_to_driver=False)
    wait_for(lambda: len(node_ids()) == 3, "three alive nodes")

    @stack.callback
    def stop_servers() -> None:
        for server in state.servers:
            server.stop()

    return state


@pytest.fixture(scope="module")
def server(setup: Setup) -> ServerProcess:
    # No reconciling rounds during these tests: a late node must get its env through the plugin.
    served = setup.serve(setup.cluster.private / "a", "--ray-reconcile-seconds", "3600")
    assert served.target, served.stop()
    return served


def presence(target: str, key: EnvKey) -> dict[str, dict[str, Any]]:
    """Node id -> its copy, from the gRPC status's metadata_json (as WTB's stub reads it)."""
    request = pb.GetEnvStatusRequest(
        workflow_id=key.workflow_id, node_id=key.node_id, version_id=key.version_id
    )
    with grpc.insecure_channel(target) as channel:
        status = EnvManagerServiceStub(channel).GetEnvStatus(request, timeout=TIMEOUT)
    return {n["node_id"]: n for n in json.loads(status.metadata_json)["nodes"]}


def test_every_node_stays_on_loopback(setup: Setup) -> None:
    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    assert {n["NodeManagerAddress"] for n in nodes} == {NODE_IP}
    assert setup.cluster.address.startswith("127.")


def test_wtbs_actor_runs_in_the_env_on_every_node(setup: Setup, server: ServerProcess) -> None:
    with EnvManagerClient(server.target, timeout=TIMEOUT) as client:
        key = EnvKey("ml_pipeline", "rag", "v1")
        env_path = str(client.ensure(key, ["beta"]).env_path)
        seen = {
            name: actor_where(env_path, node, "beta", "alpha") for name, node in node_ids().items()
        }
        copies = presence(server.target, key)
    for name, report in seen.items():
        assert report["executable"] == env_path + "/.venv/bin/python", name
        assert report["virtual_env"] == env_path + "/.venv"
        assert report["versions"] == {"beta": "1.0", "alpha": "2.0"}, name
    assert {n["state"] for n in copies.values()} == {"present"}
    assert set(copies) == set(node_ids().values())
    # Each worker's copy is its own: in its namespace's folder, not the server's.
    for name in ("n1", "n2"):
        assert (setup.node_copy(name, env_path) / "uv.lock").read_text() == (
            Path(env_path) / "uv.lock"
        ).read_text()


def test_a_node_that_joins_later_gets_the_env_through_the_plugin(
    setup: Setup, server: ServerProcess
) -> None:
    with EnvManagerClient(server.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(EnvKey("ml_pipeline", "late"), ["delta"]).env_path)
    a_late_node_runs_delta(setup.cluster, "n3", env_path)


def a_late_node_runs_delta(cluster: NamespacedCluster, name: str, env_path: str) -> None:
    """Node ``name`` joins without the env of ``delta``, then runs an actor in it."""
    cluster.add_worker(name)
    wait_for(lambda: name in node_ids(), f"{name} to join")
    assert not cluster.node_copy(name, env_path).exists()
    report = actor_where(env_path, node_ids()[name], "delta", "alpha")
    assert report["versions"] == {"delta": "1.0", "alpha": "1.0"}
    # (Its .venv links the store by absolute path, which from here is the server's store.)
    assert (cluster.node_copy(name, env_path) / "uv.lock").read_text() == (
        Path(env_path) / "uv.lock"
    ).read_text()


def test_added_deps_reach_every_node_and_delete_removes_the_env_everywhere(
    setup: Setup, server: ServerProcess
) -> None:
    key = EnvKey("ml_pipeline", "tools", "v2")
    with EnvManagerClient(server.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(key, ["alpha==1.0"]).env_path)
        assert client.add(key, ["gamma"]).exit_code == 0
        nodes = node_ids()
        for name, node in nodes.items():
            report = actor_where(env_path, node, "alpha", "gamma")
            assert report["versions"] == {"alpha": "1.0", "gamma": "1.0"}, name
        # A killed actor's worker exits a moment later; until then the env is in use (and a
        # delete would be deferred, not done). All nodes share this host's PIDs here.
        wait_for(lambda: not ProcScanner().scan(Path(env_path)), "the actors' workers to exit")
        assert client.delete(key).status is DeleteStatus.DELETED

    def copies() -> dict[str, bool]:
        refs = {
            n: exists.options(scheduling_strategy=pinned(i)).remote(env_path)
            for n, i in nodes.items()
        }
        return {n: ray.get(r, timeout=TIMEOUT) for n, r in refs.items()}

    # Gone from every node when DeleteEnv answers (a node whose copy a straggling worker
    # still used is asked again a few times within the call).
    assert copies() == dict.fromkeys(nodes, False)
    # A worker started from the deleted env fails its setup at once, naming why; no restarts.
    with pytest.raises(RuntimeEnvSetupError, match="no environment at"):
        actor_where(env_path, nodes["n1"], "alpha")


def test_a_lock_one_node_cannot_install_fails_there_only(
    setup: Setup, server: ServerProcess
) -> None:
    key = EnvKey("ml_pipeline", "private", "")
    with EnvManagerClient(server.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(key, ["onlyhere"]).env_path)
    copies = presence(server.target, key)
    nodes = node_ids()
    assert copies[nodes["n2"]]["state"] == "failed"
    assert "onlyhere" in copies[nodes["n2"]]["error"]
    assert {copies[nodes[n]]["state"] for n in ("head", "n1")} == {"present"}
    assert actor_where(env_path, nodes["n1"], "onlyhere")["versions"] == {"onlyhere": "1.0"}
    with pytest.raises(RuntimeEnvSetupError, match=f"node {nodes['n2']}"):
        actor_where(env_path, nodes["n2"], "onlyhere")


def test_a_failed_node_install_is_retried_until_the_node_can_install_it(setup: Setup) -> None:
    """n2 cannot read the wheel at first; once it can, the server's retry and the actor succeed.

    The env never changes meanwhile: the same lock, the same path, no client call.
    """
    served = setup.serve(setup.cluster.private / "retry", "--ray-reconcile-seconds", "1")
    assert served.target, served.stop()
    wheel = build_wheel(setup.private_wheels, "latecomer", "1.0")  # head and n1 see it, n2 not
    key = EnvKey("ml_pipeline", "retried", "")
    nodes = node_ids()
    with EnvManagerClient(served.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(key, ["latecomer"]).env_path)
        lock = client.export(key).uv_lock
        copy = presence(served.target, key)[nodes["n2"]]
        assert copy["state"] == "failed", copy
        assert "latecomer" in copy["error"]
        assert copy["next_retry"] is not None
        # Ray's agent on n2 now holds this runtime env's setup failure in its cache.
        with pytest.raises(RuntimeEnvSetupError, match=f"node {nodes['n2']}") as failed:
            actor_where(env_path, nodes["n2"], "latecomer")
        assert "for about 5 s, BAD_RUNTIME_ENV_CACHE_TTL_SECONDS" in str(failed.value)
        # The disk is fixed: n2's view of the wheels folder (hidden there) gets the wheel.
        shutil.copy(wheel, setup.cluster.base / "nodes" / "n2-hidden-0")
        fixed = time.monotonic()
        wait_for(
            lambda: presence(served.target, key)[nodes["n2"]]["state"] == "present",
            "the server to retry n2",
            timeout=120,  # the longest backoff (60 s) plus an install on a loaded host
        )
        assert client.export(key).uv_lock == lock
        assert presence(served.target, key)[nodes["n2"]]["next_retry"] is None
    retried = time.monotonic() - fixed
    report = _eventually_runs(env_path, nodes["n2"], "latecomer", timeout=60)
    assert report["versions"] == {"latecomer": "1.0"}, retried
    cluster = httpx.get(f"{served.url}/v1/cluster", timeout=30).json()
    assert {n["failure_cache_seconds"] for n in cluster["nodes"]} == {5}


def test_a_node_that_lost_its_root_gets_its_envs_again(setup: Setup) -> None:
    """A replaced disk on n1: the watcher finds the env missing there and installs it again."""
    root = setup.cluster.private / "lost"
    served = setup.serve(root, "--ray-reconcile-seconds", "1")
    assert served.target, served.stop()
    key = EnvKey("ml_pipeline", "lost", "")
    with EnvManagerClient(served.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(key, ["alpha"]).env_path)
    node = node_ids()["n1"]
    lock = setup.node_copy("n1", env_path) / "uv.lock"
    assert lock.exists()
    shutil.rmtree(setup.node_copy("n1", str(root)))  # n1's whole root, its uv cache too
    wait_for(lock.exists, "the watcher to install the env on n1 again", timeout=120)
    assert presence(served.target, key)[node]["state"] == "present"
    assert actor_where(env_path, node, "alpha")["versions"] == {"alpha": "2.0"}


def test_a_worker_on_a_node_that_lost_its_root_gets_the_env_from_the_plugin(
    setup: Setup,
) -> None:
    """No reconciling round: ServedEnvPlugin installs the env again for the worker, twice."""
    root = setup.cluster.private / "lost-plugin"
    served = setup.serve(root, "--ray-reconcile-seconds", "3600")
    assert served.target, served.stop()
    key = EnvKey("ml_pipeline", "lost_plugin", "")
    with EnvManagerClient(served.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(key, ["alpha"]).env_path)
    node = node_ids()["n1"]
    for _ in range(2):  # the second time, the plugin has used this root on n1 before
        shutil.rmtree(setup.node_copy("n1", str(root)))
        assert actor_where(env_path, node, "alpha")["versions"] == {"alpha": "2.0"}


def _eventually_runs(env_path: str, node: str, *modules: str, timeout: float) -> dict[str, Any]:
    """WTB's actor on ``node``, tried again while Ray's agent replays a cached failure."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return actor_where(env_path, node, *modules)
        except RuntimeEnvSetupError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def test_the_http_api_and_client_serve_the_cluster(setup: Setup, server: ServerProcess) -> None:
    with HttpEnvClient(server.url, timeout=TIMEOUT) as client:
        assert client.health() == "SERVING"
        body = {"workflow_id": "http_flow", "node_id": "node", "packages": ["gamma"]}
        answer = client.http.post("/v1/envs", json=body)
        assert answer.status_code == 201, answer.text
        created = answer.json()
    assert {n["state"] for n in created["nodes"]} == {"present"}
    assert {n["node_id"] for n in created["nodes"]} == set(node_ids().values())
    for name, node in node_ids().items():
        report = actor_where(created["env_path"], node, "gamma")
        assert report["executable"] == created["python_path"], name
    cluster = httpx.get(f"{server.url}/v1/cluster", timeout=30).json()
    assert cluster["served"] is True
    assert {n["problem"] for n in cluster["nodes"]} == {None}
    page = httpx.get(server.url, timeout=30).text
    assert "<th>Nodes</th>" in page
    assert "node-present" in page


def test_a_node_without_the_plugin_is_provisioned_by_the_server(setup: Setup) -> None:
    served = setup.serve(setup.cluster.private / "b", "--ray-reconcile-seconds", "1")
    assert served.target, served.stop()
    with EnvManagerClient(served.target, timeout=TIMEOUT) as client:
        key = EnvKey("eager", "node")
        env_path = str(client.ensure(key, ["alpha"]).env_path)
        no_plugin = {k: v for k, v in setup.cluster.env.items() if k != "RAY_RUNTIME_ENV_PLUGINS"}
        setup.cluster.add_worker("n4", env=no_plugin)
        wait_for(lambda: "n4" in node_ids(), "n4 to join")
        node = node_ids()["n4"]
        wait_for(
            lambda: presence(served.target, key).get(node, {}).get("state") == "present",
            "the server to provision n4",
        )
    assert actor_where(env_path, node, "alpha")["versions"] == {"alpha": "2.0"}
    cluster = httpx.get(f"{served.url}/v1/cluster", timeout=30).json()
    plugins = {n["node_id"]: n["plugin"] for n in cluster["nodes"]}
    assert plugins[node] is False
    assert plugins[node_ids()["n1"]] is True


def test_a_root_one_node_cannot_write_is_refused_at_start(setup: Setup) -> None:
    refused = setup.serve(setup.cluster.base / "ro" / "root")
    stderr = refused.stop()
    assert refused.process.returncode == 2
    assert node_ids()["n1"] in stderr
    assert "cannot hold the root" in stderr


def test_a_node_on_another_python_minor_is_named() -> None:
    facts = [
        NodeFacts("aa", "127.0.0.2", "2.60.0", "3.11"),
        NodeFacts("bb", "10.0.0.9", "2.60.0", "3.12"),
    ]
    with pytest.raises(RayNodeUnusable, match="node bb") as caught:
        check_python(facts, "3.11")
    assert caught.value.node_id == "bb"


def test_an_address_no_cluster_answers_is_refused_at_once(tmp_path: Path) -> None:
    server = ServerProcess(
        ["--root", str(tmp_path / "root"), "--ray-address", "127.0.0.9:1"], dict(os.environ)
    )
    stderr = server.stop()
    assert server.process.returncode == 2
    assert "no Ray cluster answers at 127.0.0.9:1" in stderr


def test_a_create_for_another_python_minor_is_refused_before_anything_is_built(
    setup: Setup, server: ServerProcess
) -> None:
    with EnvManagerClient(server.target, timeout=TIMEOUT) as client:
        # The client raises the class the server named (gRPC INVALID_ARGUMENT on the wire).
        with pytest.raises(RayPythonMismatch, match="cannot run on this cluster"):
            client.ensure(EnvKey("ml_pipeline", "py312"), ["alpha"], python="3.12")
        with pytest.raises(EnvironmentNotFound):  # GetEnvStatus answers NOT_FOUND
            client.get(EnvKey("ml_pipeline", "py312"))
