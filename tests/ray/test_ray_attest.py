"""A damaged copy on one node of a served cluster is never run silently (issue 30, items 2-3).

The issue's case, on a cluster whose worker node sees its own copy of the
served root (:mod:`tests.support.ray_namespaces`): one package folder deleted
from that node's copy, its dist-info kept. The next worker there runs after the
copy is rebuilt from the lock (the plugin's check before the worker starts), or,
with no worker asking, the reconciling round finds and heals it; the node's
audit says what was found, and the cluster view shows each node's digest and
when it was checked. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
import time
from collections.abc import Iterator
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

from tests.ray.test_ray_service import (
    TIMEOUT,
    ServerProcess,
    Setup,
    node_ids,
    pinned,
    wait_for,
    wtb_runtime_env,
)
from tests.support.ray_namespaces import NamespacedCluster, ray_env, require_isolation
from tests.support.ray_start import started_cluster
from tests.support.server_process import SOURCE_ROOT
from uv_envs import EnvKey
from uv_envs.ray import plugin_config
from uv_envs_server import EnvManagerClient
from uv_envs_server._generated import env_manager_pb2 as pb
from uv_envs_server._generated.env_manager_pb2_grpc import EnvManagerServiceStub

pytestmark = pytest.mark.ray

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]


@ray.remote(num_cpus=0)
class Importer:
    def load(self, module: str) -> str:
        """Import ``module`` for real (its dist-info alone would not do)."""
        import importlib

        return str(importlib.import_module(module).__file__)


@ray.remote(num_cpus=0)
def delete_package(env_path: str, package: str) -> str:
    """On the node: delete one package folder from its copy, keeping the dist-info."""
    import shutil

    site = next((Path(env_path) / ".venv").resolve().glob("lib/python*/site-packages"))
    shutil.rmtree(site / package)
    assert any(site.glob(f"{package}-*.dist-info"))
    return str(site / package)


@ray.remote(num_cpus=0)
def has_package(env_path: str, package: str) -> bool:
    site = next((Path(env_path) / ".venv").resolve().glob("lib/python*/site-packages"))
    return (site / package / "__init__.py").is_file()


@ray.remote(num_cpus=0)
def node_verifies(root: str, key: EnvKey) -> list[dict[str, Any]]:
    """On the node: the ``verify`` rows of its own audit trail for ``key``."""
    import contextlib as cl

    from uv_envs import EnvManager, Settings

    with cl.closing(EnvManager(Settings.from_env(None, root=Path(root)))) as manager:
        page = manager.operations(workflow_id=key.workflow_id, node_id=key.node_id, limit=50)
    return [dict(r.metadata) for r in page.items if r.operation == "verify"]


@ray.remote(num_cpus=0)
def load_module(module: str) -> str:
    import importlib

    return str(importlib.import_module(module).__file__)


@ray.remote(num_cpus=0)
def repair_copy(root: str, key: EnvKey) -> bool:
    """On the node: rebuild its copy from the lock, as the reconciling round's install does."""
    import contextlib as cl

    from uv_envs import EnvManager, Settings

    with cl.closing(EnvManager(Settings.from_env(None, root=Path(root)))) as manager:
        return manager.repair(key).repaired == (key,)


def logged(folder: Path, text: str) -> bool:
    """Whether any log file under ``folder`` (a node's Ray sessions) holds ``text``."""
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError, UnicodeDecodeError):
            if path.is_file() and text in path.read_text():
                return True
    return False


def copies(target: str, key: EnvKey) -> dict[str, dict[str, Any]]:
    """Node id -> its copy, from the gRPC status's metadata_json."""
    request = pb.GetEnvStatusRequest(
        workflow_id=key.workflow_id, node_id=key.node_id, version_id=key.version_id
    )
    with grpc.insecure_channel(target) as channel:
        status = EnvManagerServiceStub(channel).GetEnvStatus(request, timeout=TIMEOUT)
    return {n["node_id"]: n for n in json.loads(status.metadata_json)["nodes"]}


def on(node: str, remote: Any, *args: Any) -> Any:  # noqa: ANN401 - a remote function's answer
    return ray.get(remote.options(scheduling_strategy=pinned(node)).remote(*args), timeout=TIMEOUT)


@pytest.fixture(scope="module")
def setup(wheelhouse: Path) -> Iterator[Setup]:
    require_isolation()
    with started_cluster("ra", lambda base, stack: _cluster(base, stack, wheelhouse)) as state:
        yield state


def _cluster(base: Path, stack: contextlib.ExitStack[Any], wheelhouse: Path) -> Setup:
    """The head and one worker node, n1, which sees its own copy of the served roots."""
    private = base / "served"
    private.mkdir()
    python_path = [str(SOURCE_ROOT), os.environ.get("PYTHONPATH")]
    env = ray_env(
        base,
        {
            "RAY_RUNTIME_ENV_PLUGINS": plugin_config(),
            "UV_ENVS_FIND_LINKS": str(wheelhouse),
            "UV_ENVS_NO_INDEX": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, python_path)),
        },
    )
    env.pop("UV_ENVS_CACHE_DIR", None)  # each node's cache is in its own root
    env.pop("UV_ENVS_ROOT", None)
    cluster = NamespacedCluster(base=base, private=private, env=env)
    state = Setup(cluster, base)
    stack.enter_context(cluster.session())
    cluster.add_worker("n1")
    ray.init(address=cluster.address, log_to_driver=False)
    wait_for(lambda: len(node_ids()) == 2, "two alive nodes")

    @stack.callback
    def stop_servers() -> None:
        for server in state.servers:
            server.stop()

    return state


def _serve(setup: Setup, name: str, reconcile: str) -> tuple[ServerProcess, str]:
    root = str(setup.cluster.private / name)
    served = setup.serve(Path(root), "--ray-reconcile-seconds", reconcile)
    assert served.target, served.stop()
    return served, root


def test_a_deleted_package_folder_is_rebuilt_before_the_next_worker_there(setup: Setup) -> None:
    # No reconciling round: what runs before the worker is the plugin's check.
    server, root = _serve(setup, "a", "3600")
    n1 = node_ids()["n1"]
    key = EnvKey("attest", "plugin")
    with EnvManagerClient(server.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(key, ["beta"]).env_path)
    on(n1, delete_package, env_path, "beta")
    assert not on(n1, has_package, env_path, "beta")
    actor = Importer.options(  # type: ignore[attr-defined]
        runtime_env=wtb_runtime_env(env_path), scheduling_strategy=pinned(n1)
    ).remote()
    try:
        loaded = ray.get(actor.load.remote("beta"), timeout=TIMEOUT)
    finally:
        ray.kill(actor)
    assert loaded.startswith(env_path) or "/store/" in loaded, loaded
    assert on(n1, has_package, env_path, "beta")
    # n1's own audit trail: the check before the hand-out found the damage.
    verifies = on(n1, node_verifies, root, key)
    assert [v["before_hand_out"] for v in verifies] == [True]
    assert any("beta/__init__.py is missing" in p for p in verifies[0]["problems"]), verifies


def test_the_reconciling_round_flags_and_heals_a_damaged_node_and_shows_its_digest(
    setup: Setup,
) -> None:
    server, root = _serve(setup, "b", "1")
    n1 = node_ids()["n1"]
    key = EnvKey("attest", "round")
    with EnvManagerClient(server.target, timeout=TIMEOUT) as client:
        created = client.ensure(key, ["beta"])
    env_path = str(created.env_path)

    def checked_since(moment: float) -> bool:
        copy = copies(server.target, key)[n1]
        return copy["checked_at"] is not None and copy["checked_at"] > moment

    wait_for(lambda: checked_since(0), "n1's first check")
    first = copies(server.target, key)
    assert {c["digest_matches"] for c in first.values()} == {True}, first
    assert len({c["digest"] for c in first.values()}) == 1  # one lock: one digest on every node
    on(n1, delete_package, env_path, "beta")
    damaged_at = time.time()  # after the delete: a check begun before it does not count
    wait_for(
        lambda: (
            checked_since(damaged_at) and bool(copies(server.target, key)[n1]["digest_matches"])
        ),
        "the round to heal n1's copy",
    )
    assert on(n1, has_package, env_path, "beta")
    verifies = on(n1, node_verifies, root, key)
    assert any(any("beta/__init__.py is missing" in p for p in v["problems"]) for v in verifies), (
        verifies
    )
    cluster = httpx.get(f"{server.url}/v1/cluster", timeout=30).json()
    nodes = {n["node_id"]: n for n in cluster["nodes"]}
    assert nodes[n1]["checked_at"] > damaged_at
    assert nodes[n1]["digest_differs"] == []


def test_a_copy_damaged_while_a_worker_of_it_lives_is_refused_until_it_is_rebuilt(
    setup: Setup,
) -> None:
    # Ray's agent reuses this runtime env's setup while the actor below lives, calling no
    # plugin: only the worker's own start (the launcher in py_executable) checks the copy.
    server, root = _serve(setup, "c", "3600")
    n1 = node_ids()["n1"]
    key = EnvKey("attest", "cached")
    with EnvManagerClient(server.target, timeout=TIMEOUT) as client:
        env_path = str(client.ensure(key, ["beta"]).env_path)
    runtime_env = wtb_runtime_env(env_path)
    actor = Importer.options(  # type: ignore[attr-defined]
        runtime_env=runtime_env, scheduling_strategy=pinned(n1)
    ).remote()
    try:
        ray.get(actor.load.remote("beta"), timeout=TIMEOUT)
        on(n1, delete_package, env_path, "beta")
        task = load_module.options(runtime_env=runtime_env, scheduling_strategy=pinned(n1))
        loaded = task.remote("beta")
        sessions = setup.cluster.base / "nodes" / "n1-temp"
        wait_for(
            lambda: logged(sessions, f"not starting a worker from {env_path}/.venv"),
            "n1's launcher to refuse the changed copy",
        )
        assert logged(sessions, "beta/__init__.py is missing")
        ready, _ = ray.wait([loaded], timeout=0)
        assert not ready  # nothing ran on the damaged copy
        assert on(n1, repair_copy, root, key)  # what the reconciling round does
        assert ray.get(loaded, timeout=TIMEOUT).endswith("beta/__init__.py")
    finally:
        ray.kill(actor)
