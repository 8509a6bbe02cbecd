"""A served cluster fetches each locked file from the index once: the rest comes from the relay.

The same namespaced cluster as ``test_ray_service`` (each worker node has its
own folder over the served roots, so its own root and uv cache, as a separate
machine), but the server and the nodes resolve against a real index on
loopback that counts every file it serves (:class:`uv_envs.testing.CountingIndex`).
No reconciling rounds: late nodes get their envs through the plugin, when a
worker first needs one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

if importlib.util.find_spec("ray") is None:
    if os.environ.get("UV_ENVS_REQUIRE_RAY"):
        raise RuntimeError("UV_ENVS_REQUIRE_RAY is set but ray is not installed")
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

import ray
from ray.exceptions import RuntimeEnvSetupError

from tests.support.ray_namespaces import NamespacedCluster, ray_env, require_isolation
from tests.support.ray_start import started_cluster
from tests.support.server_process import SOURCE_ROOT
from uv_envs import EnvKey
from uv_envs.ray import plugin_config
from uv_envs.testing import CountingIndex
from uv_envs_server import EnvManagerClient

from .test_ray_service import (
    TIMEOUT,
    ServerProcess,
    a_late_node_runs_delta,
    actor_where,
    node_ids,
    wait_for,
)

pytestmark = pytest.mark.ray


@attrs.define
class Served:
    """The cluster, its index, and the server serving it through its relay."""

    cluster: NamespacedCluster
    index: CountingIndex
    server: ServerProcess
    root: Path

    def node_copy(self, name: str, path: str) -> Path:
        return self.cluster.node_copy(name, path)


@pytest.fixture(scope="module")
def served(wheelhouse: Path) -> Iterator[Served]:
    require_isolation()
    with (
        CountingIndex(wheelhouse) as index,
        started_cluster("rr", lambda base, stack: _cluster(base, stack, index)) as state,
    ):
        yield state


def _cluster(base: Path, stack: contextlib.ExitStack[Any], index: CountingIndex) -> Served:
    private = base / "served"
    private.mkdir()
    python_path = [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]
    env = ray_env(
        base,
        {
            "RAY_RUNTIME_ENV_PLUGINS": plugin_config(),
            "UV_ENVS_INDEX_URL": index.url,
            "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
        },
    )
    for inherited in (
        "UV_ENVS_CACHE_DIR",
        "UV_ENVS_ROOT",
        "UV_ENVS_FIND_LINKS",
        "UV_ENVS_NO_INDEX",
    ):
        env.pop(inherited, None)  # each node's cache in its own root; the index is the only source
    cluster = NamespacedCluster(base=base, private=private, env=env)
    stack.enter_context(cluster.session())
    cluster.add_worker("n1")
    ray.init(address=cluster.address, log_to_driver=False)
    wait_for(lambda: len(node_ids()) == 2, "two alive nodes")
    root = private / "relayed"
    args = ["--root", str(root), "--ray-address", cluster.address]
    server = ServerProcess([*args, "--ray-reconcile-seconds", "3600"], cluster.env)
    stack.callback(server.stop)
    assert server.target, server.stop()
    return Served(cluster, index, server, root)


def test_the_index_serves_each_file_once_for_the_whole_cluster(served: Served) -> None:
    served.index.reset()
    with EnvManagerClient(served.server.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(EnvKey("fanout", "rag", "v1"), ["beta"]).env_path)
    for name, node in node_ids().items():
        report = actor_where(env_path, node, "beta", "alpha")
        assert report["versions"] == {"beta": "1.0", "alpha": "2.0"}, name
    # Two nodes with two empty caches, one fetch of each file: the server's relay's.
    assert {name: s.requests for name, s in served.index.served().items()} == {
        "alpha-2.0-py3-none-any.whl": 1,
        "beta-1.0-py3-none-any.whl": 1,
    }
    assert (served.node_copy("n1", env_path) / "uv.lock").read_text() == (
        Path(env_path) / "uv.lock"
    ).read_text()
    relay = httpx.get(f"{served.server.url}/v1/cluster", timeout=30).json()["relay"]
    assert relay["fetched_files"] == 2
    assert relay["served_files"] >= 3
    assert relay["refused"] == 0


def test_a_node_joining_with_the_index_unreachable_installs_from_the_relay(
    served: Served,
) -> None:
    with EnvManagerClient(served.server.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(EnvKey("fanout", "late"), ["delta"]).env_path)
    served.index.stop()  # from here on, no node reaches the index
    a_late_node_runs_delta(served.cluster, "n2", env_path)


def test_bytes_altered_at_the_relay_are_refused_on_the_node_and_nothing_installed(
    served: Served,
) -> None:
    with EnvManagerClient(served.server.target, timeout=TIMEOUT) as client:
        env_path = str(client.get(EnvKey("fanout", "rag", "v1")).env_path)
    assert env_path
    kept = list((served.root / "relay").glob("??/*"))
    assert kept, "the relay keeps the files it fetched"
    for path in kept:
        path.write_bytes(path.read_bytes() + b"\0")
    served.cluster.add_worker("n3")
    wait_for(lambda: "n3" in node_ids(), "n3 to join")
    with pytest.raises(RuntimeEnvSetupError, match="Hash mismatch"):
        actor_where(env_path, node_ids()["n3"], "beta")
    copy = served.node_copy("n3", env_path)
    assert not (copy / ".venv").exists()
    assert not copy.exists() or not any(copy.iterdir())
