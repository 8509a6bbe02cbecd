"""Real Ray: tasks and actors run in uv-envs envs, on one node and across a multi-node cluster.

One ``ray.cluster_utils.Cluster`` per module (head + 2 nodes, one CPU each,
no dashboard, on 127.0.0.1), started by ``tests/support/ray_start.py`` in a short
folder of its own under TMPDIR.
Every node loads the uv_envs runtime-env plugin and has its own root
(``UV_ENVS_ROOT``), all resolving against the test wheelhouse. Every
``ray.get`` has a timeout.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

# Before Ray is imported: its constants are read at import time.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # keeps every node on 127.0.0.1
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written to ~/.ray

if importlib.util.find_spec("ray") is None:
    if os.environ.get("UV_ENVS_REQUIRE_RAY"):
        raise RuntimeError("UV_ENVS_REQUIRE_RAY is set but ray is not installed")
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)

import ray
import ray.cloudpickle
from ray.runtime_env import RuntimeEnv
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tests.support.ray_start import START_TIMEOUT, local_cluster, started_cluster
from tests.support.server_process import SOURCE_ROOT, Server, source_env, wheelhouse_env
from tests.support.wheelhouse import build_wheel, ray_wheels
from uv_envs import (
    EnvKey,
    EnvManager,
    LocalEnvironmentProvider,
    RayImportFailed,
    RayNotAvailable,
    Settings,
    SubprocessUvExecutor,
)
from uv_envs._store.layout import Layout
from uv_envs._uv.executor import find_uv_binary
from uv_envs._uv.python import PythonFinder
from uv_envs.ray import (
    LockedSpec,
    RayEnvironmentProvider,
    UvEnvsPlugin,
    alive_nodes,
    check_plugin,
    ensure_here,
    plugin_config,
    plugin_runtime_env,
    provision,
)
from uv_envs.ray._install import ensure_on
from uv_envs.testing import CountingExecutor, check_provider_contract
from uv_envs_server import GrpcEnvironmentProvider

if TYPE_CHECKING:
    from ray._private.node import Node
    from ray.cluster_utils import Cluster

pytestmark = pytest.mark.ray

TIMEOUT = 180  # seconds for any ray.get: a loaded 2-core machine starts workers slowly

# The tasks below are defined in this module, which workers in an env cannot import.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # type: ignore[no-untyped-call]


@attrs.define
class RayCluster:
    cluster: Cluster
    base: Path
    node_env: dict[str, str]
    roots: dict[str, Path] = attrs.field(factory=dict)

    def add_node(self, *, plugin: bool = True) -> Node:
        index = len(self.roots)
        env = {**self.node_env, "UV_ENVS_ROOT": str(self.base / f"n{index}")}
        if not plugin:
            env.pop("RAY_RUNTIME_ENV_PLUGINS")
        node: Node = self.cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1", env_vars=env)
        self.cluster.wait_for_nodes(timeout=START_TIMEOUT)  # 30 s by default: too short here
        self.roots[node.node_id] = self.base / f"n{index}"
        return node


@pytest.fixture(scope="module")
def ray_cluster(
    wheelhouse: Path, uv_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RayCluster]:
    extra = ray_wheels(tmp_path_factory.mktemp("cluster-wheels"))

    def start(base: Path, stack: contextlib.ExitStack[Any]) -> RayCluster:
        node_env = {
            "RAY_RUNTIME_ENV_PLUGINS": plugin_config(),
            "UV_ENVS_FIND_LINKS": f"{wheelhouse} {extra}",
            "UV_ENVS_NO_INDEX": "1",
            "UV_ENVS_CACHE_DIR": str(uv_cache),
        }
        cluster = local_cluster(base, stack, {**node_env, "UV_ENVS_ROOT": str(base / "n0")})
        state = RayCluster(cluster, base, node_env)
        head: Any = cluster.head_node  # typed as None by Ray until the head starts
        state.roots[head.node_id] = base / "n0"
        state.add_node()
        state.add_node()
        # Off loopback, the driver would wait minutes for a GCS it cannot reach.
        assert cluster.address.startswith("127.0.0.1:"), cluster.address
        ray.init(address=cluster.address, log_to_driver=False)
        stack.callback(ray.shutdown)
        return state

    with started_cluster("r", start) as state:
        yield state


@pytest.fixture
def extra_wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ray_wheels(tmp_path_factory.mktemp("ray-wheels"))


@pytest.fixture
def ray_manager(settings: Settings, python_finder: PythonFinder, extra_wheels: Path) -> EnvManager:
    index = attrs.evolve(settings.index, find_links=(*settings.index.find_links, str(extra_wheels)))
    return EnvManager(attrs.evolve(settings, index=index), python_finder=python_finder)


def pinned(node_id: str) -> NodeAffinitySchedulingStrategy:
    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def where(*modules: str) -> dict[str, Any]:
    """Where this worker runs, and the versions it imports."""
    import importlib.metadata

    versions = {}
    for name in modules:
        __import__(name)
        versions[name] = importlib.metadata.version(name)
    return {
        "executable": sys.executable,
        "virtual_env": os.environ.get("VIRTUAL_ENV"),
        "node": ray.get_runtime_context().get_node_id(),
        "versions": versions,
    }


report = ray.remote(num_cpus=0)(where)


@ray.remote(num_cpus=0)
class Reporter:
    def where(self, *modules: str) -> dict[str, Any]:
        return where(*modules)


def run_task_and_actor(runtime_env: dict[str, Any], module: str) -> list[dict[str, Any]]:
    task = ray.get(report.options(runtime_env=runtime_env).remote(module), timeout=TIMEOUT)
    actor = Reporter.options(runtime_env=runtime_env).remote()  # type: ignore[attr-defined]
    try:
        in_actor = ray.get(actor.where.remote(module), timeout=TIMEOUT)
    finally:
        ray.kill(actor)
    return [task, in_actor]


def test_the_local_providers_env_runs_a_task_and_an_actor(
    ray_cluster: RayCluster, manager: EnvManager
) -> None:
    assert importlib.util.find_spec("gamma") is None  # only the env has it
    provider = LocalEnvironmentProvider(manager)
    config = {"workflow_id": "wf", "node_id": "rag", "version_id": "v1", "packages": ["gamma"]}
    provider.create_environment("variant-7", config)
    env = manager.get(EnvKey("wf", "rag", "v1"))
    # The Ray-only form, as it is; then WTB's own shape (py_executable + env_vars).
    ray_form = provider.get_ray_runtime_env("variant-7")
    wtb = provider.get_runtime_env("variant-7")
    assert ray_form is not None
    assert wtb is not None
    wtb_form = {"py_executable": wtb["py_executable"], "env_vars": wtb["env_vars"]}
    for runtime_env in (ray_form, wtb_form):
        for seen in run_task_and_actor(runtime_env, "gamma"):
            assert seen["executable"] == str(env.python_path)
            assert seen["virtual_env"] == str(env.venv_path)
            assert seen["versions"] == {"gamma": "1.0"}


@pytest.fixture
def server(tmp_path: Path, wheelhouse: Path, uv_cache: Path) -> Iterator[Server]:
    root = tmp_path / "server-root"
    started = Server(["--port", "0", "--root", str(root)], wheelhouse_env(wheelhouse, uv_cache))
    assert started.target, "the server did not start"
    yield started
    started.stop()


def test_the_grpc_providers_env_runs_a_task_and_an_actor(
    ray_cluster: RayCluster, server: Server
) -> None:
    provider = GrpcEnvironmentProvider(server.target, timeout=120)
    try:
        created = provider.create_environment(
            "variant-9", {"workflow_id": "wf", "node_id": "n", "packages": ["beta"]}
        )
        runtime_env = provider.get_ray_runtime_env("variant-9")
        assert runtime_env is not None
        for seen in run_task_and_actor(runtime_env, "beta"):
            assert seen["executable"] == created["python_path"]
            assert seen["virtual_env"] == created["venv_path"]
            assert seen["versions"] == {"beta": "1.0"}
    finally:
        provider.close()


def test_provision_installs_one_lock_on_every_node(
    ray_cluster: RayCluster, manager: EnvManager
) -> None:
    spec = LockedSpec.resolve(["beta", "gamma"], manager=manager)
    assert spec.locked == {"alpha": "2.0", "beta": "1.0", "gamma": "1.0"}
    nodes = alive_nodes()
    assert len(nodes) >= 3
    cluster_env = provision(spec, timeout=TIMEOUT)
    assert sorted(n.node_id for n in cluster_env.nodes) == nodes
    built = {n.node_id: n for n in cluster_env.nodes}
    for node in nodes:
        seen = ray.get(
            report.options(
                runtime_env=dict(cluster_env.runtime_env), scheduling_strategy=pinned(node)
            ).remote("alpha", "beta", "gamma"),
            timeout=TIMEOUT,
        )
        assert seen["node"] == node
        # The node's own env, under that node's root.
        assert seen["executable"] == built[node].python_path
        assert Path(seen["executable"]).is_relative_to(ray_cluster.roots[node])
        assert seen["versions"] == spec.locked
    # The same packages in another order are the same spec: same lock, same URI, same env.
    again = LockedSpec.resolve(["gamma", "beta"], manager=manager)
    assert again.uri(ray.__version__) == spec.uri(ray.__version__)
    # Compare what names the env, not its size: the background bytecode compile may
    # add .pyc files to the shared venv between the two provisions.
    unsized = [attrs.evolve(n, size_bytes=0) for n in cluster_env.nodes]
    assert [
        attrs.evolve(n, size_bytes=0) for n in provision(again, timeout=TIMEOUT).nodes
    ] == unsized


def test_a_node_added_later_gets_the_env_through_the_plugin(
    ray_cluster: RayCluster, manager: EnvManager
) -> None:
    spec = LockedSpec.resolve(["delta"], manager=manager)
    node = ray_cluster.add_node()
    runtime_env = plugin_runtime_env(spec)  # checks every alive node has the plugin
    seen = ray.get(
        report.options(runtime_env=runtime_env, scheduling_strategy=pinned(node.node_id)).remote(
            "delta", "alpha"
        ),
        timeout=TIMEOUT,
    )
    assert seen["node"] == node.node_id
    assert Path(seen["executable"]).is_relative_to(ray_cluster.roots[node.node_id])
    assert seen["virtual_env"] == str(Path(seen["executable"]).parent.parent)
    assert seen["versions"] == {"delta": "1.0", "alpha": "1.0"}


def test_a_copy_damaged_while_a_worker_of_it_lives_is_rebuilt_before_the_next_worker(
    ray_cluster: RayCluster, manager: EnvManager
) -> None:
    # Ray's agent caches the setup of a runtime env while a worker of it lives and calls no
    # plugin for the next worker: the worker's own start (the launcher) must check the copy.
    spec = LockedSpec.resolve(["beta"], manager=manager)
    runtime_env = plugin_runtime_env(spec)
    actor = Reporter.options(runtime_env=runtime_env).remote()  # type: ignore[attr-defined]
    try:
        first = ray.get(actor.where.remote("beta"), timeout=TIMEOUT)
        venv = Path(first["executable"]).parent.parent
        site = next(venv.resolve().glob("lib/python*/site-packages"))
        shutil.rmtree(site / "beta")  # its dist-info stays: only the files say it is gone
        later = ray.get(
            report.options(
                runtime_env=runtime_env, scheduling_strategy=pinned(first["node"])
            ).remote("beta"),
            timeout=TIMEOUT,
        )
    finally:
        ray.kill(actor)
    assert later["node"] == first["node"]
    assert later["versions"] == {"beta": "1.0"}
    rebuilt = next(venv.resolve().glob("lib/python*/site-packages"))
    assert (rebuilt / "beta" / "__init__.py").is_file()
    # The node's audit: the new worker's start rebuilt the copy (a repair) before it ran.
    with contextlib.closing(
        EnvManager(Settings.from_env(None, root=ray_cluster.roots[first["node"]]))
    ) as node:
        done = [(r.operation, r.status.value) for r in node.operations(limit=50).items]
    assert ("repair", "SUCCESS") in done, done


def test_a_lock_that_fails_on_the_node_is_a_runtime_env_setup_error(
    ray_cluster: RayCluster, settings: Settings, python_finder: PythonFinder, tmp_path: Path
) -> None:
    doomed = tmp_path / "doomed"  # only the driver can see it
    doomed.mkdir()
    build_wheel(doomed, "omega", "1.0")
    index = attrs.evolve(settings.index, find_links=(*settings.index.find_links, str(doomed)))
    driver = EnvManager(attrs.evolve(settings, index=index), python_finder=python_finder)
    spec = LockedSpec.resolve(["omega"], manager=driver)
    shutil.rmtree(doomed)
    with pytest.raises(ray.exceptions.RuntimeEnvSetupError) as caught:
        ray.get(
            report.options(runtime_env=plugin_runtime_env(spec)).remote("omega"), timeout=TIMEOUT
        )
    message = str(caught.value)
    assert "omega" in message
    assert "uv lock failed" in message  # uv's own message is carried along


def test_an_env_that_cannot_import_ray_is_refused_before_a_worker_starts(
    ray_cluster: RayCluster, ray_manager: EnvManager, python_finder: PythonFinder
) -> None:
    # Resolved where Ray is not linked (the lock itself is fine), then handed to Ray.
    plain = EnvManager(attrs.evolve(ray_manager.settings, ray="off"), python_finder=python_finder)
    spec = LockedSpec.resolve(["msgpack"], manager=plain)
    with pytest.raises(ray.exceptions.RuntimeEnvSetupError) as caught:
        ray.get(
            report.options(runtime_env=plugin_runtime_env(spec)).remote("msgpack"), timeout=TIMEOUT
        )
    assert "import ray fails" in str(caught.value)
    assert "this msgpack is broken" in str(caught.value)
    with pytest.raises(RayImportFailed):
        provision(spec, timeout=TIMEOUT)


def test_a_node_without_the_plugin_is_found(ray_cluster: RayCluster) -> None:
    bare = ray_cluster.add_node(plugin=False)
    try:
        with pytest.raises(RayNotAvailable, match=bare.node_id):
            check_plugin()
    finally:
        ray_cluster.cluster.remove_node(bare)
        ray_cluster.roots.pop(bare.node_id)


def test_the_ray_provider_serves_wtb_on_every_node(
    ray_cluster: RayCluster, manager: EnvManager, tmp_path: Path
) -> None:
    shared_root = tmp_path / "nodes"  # one root path for every node (here: one machine)
    provider = RayEnvironmentProvider(manager, root=str(shared_root), timeout=TIMEOUT)
    check_provider_contract(
        provider, {"workflow_id": "wtb", "node_id": "n", "version_id": "v", "packages": ["gamma"]}
    )
    provider.create_environment("v2", {"workflow_id": "wtb", "node_id": "m", "packages": ["gamma"]})
    runtime = provider.get_runtime_env("v2")
    assert runtime is not None
    actor = Reporter.options(  # type: ignore[attr-defined]
        runtime_env={"py_executable": runtime["py_executable"], "env_vars": runtime["env_vars"]}
    ).remote()
    try:
        seen = ray.get(actor.where.remote("gamma"), timeout=TIMEOUT)
    finally:
        ray.kill(actor)
    assert seen["executable"] == runtime["py_executable"]
    assert Path(seen["executable"]).is_relative_to(shared_root)
    assert seen["versions"] == {"gamma": "1.0"}
    provider.cleanup_environment("v2")


def readme_ray_example() -> str:
    text = (SOURCE_ROOT / "README.md").read_text()
    blocks = text.split("```python\n")
    matching = [b.split("```", 1)[0] for b in blocks[1:] if "get_ray_runtime_env" in b]
    assert len(matching) == 1, "the README has one Ray example"
    return matching[0]


def test_the_readme_ray_example_runs_as_written(
    ray_cluster: RayCluster, wheelhouse: Path, uv_cache: Path, tmp_path: Path
) -> None:
    six = tmp_path / "six-wheel"
    six.mkdir()
    build_wheel(six, "six", "1.17.0")
    script = tmp_path / "example.py"
    script.write_text(readme_ray_example())
    env = source_env(
        RAY_ADDRESS=ray_cluster.cluster.address,
        UV_ENVS_ROOT=str(tmp_path / "root"),
        UV_ENVS_FIND_LINKS=f"{wheelhouse} {six}",
        UV_ENVS_NO_INDEX="1",
        UV_ENVS_CACHE_DIR=str(uv_cache),
    )
    completed = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    printed = Path(completed.stdout.strip().splitlines()[-1])
    assert printed.is_relative_to(tmp_path / "root")  # six came from the env
    assert printed.name == "__init__.py"


def test_the_plugin_names_uris_and_releases_only_unleased_envs(
    ray_manager: EnvManager, wheelhouse: Path, uv_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = LockedSpec.resolve(["alpha"], manager=ray_manager)
    # As a node's agent sees it: its root and index come from UV_ENVS_* variables.
    node_root = ray_manager.settings.root.parent / "node"
    monkeypatch.setenv("UV_ENVS_ROOT", str(node_root))
    monkeypatch.setenv("UV_ENVS_FIND_LINKS", " ".join(ray_manager.settings.index.find_links))
    monkeypatch.setenv("UV_ENVS_NO_INDEX", "1")
    monkeypatch.setenv("UV_ENVS_CACHE_DIR", str(uv_cache))
    # A background compile in progress keeps its entry from being pruned (it would be
    # pruned by the next cleanup); here the bytes freed must be seen at once.
    monkeypatch.setenv("UV_ENVS_BACKGROUND_BYTECODE", "0")
    plugin = UvEnvsPlugin()
    assert plugin.get_uris(RuntimeEnv()) == []  # Ray asks for every runtime env
    assert plugin.get_uris(RuntimeEnv(pip=["x"])) == []
    [uri] = plugin.get_uris(RuntimeEnv(uv_envs=spec.field()))
    assert uri == spec.uri(ray.__version__)
    built = ensure_here(spec)
    assert built.size_bytes > 0
    assert Path(built.env_path).is_relative_to(node_root)
    node = EnvManager(Settings.from_env())
    key = spec.key(ray.__version__)
    with node.lease(key):
        assert plugin.delete_uri(uri, logging.getLogger("test")) == 0
        assert Path(built.env_path).is_dir()  # never pulled from under a lease
    assert plugin.delete_uri(uri, logging.getLogger("test")) > 0
    assert not Path(built.env_path).exists()
    assert not any(Layout(node.settings.root).store_dir.iterdir())  # the store entry went with it


def test_a_spec_resolves_with_one_uv_lock_and_no_venv_and_a_node_builds_from_it(
    settings: Settings, python_finder: PythonFinder, extra_wheels: Path
) -> None:
    index = attrs.evolve(settings.index, find_links=(*settings.index.find_links, str(extra_wheels)))
    settings = attrs.evolve(settings, index=index)
    counting = CountingExecutor(SubprocessUvExecutor(find_uv_binary()))
    driver = EnvManager(settings, executor=counting, python_finder=python_finder)
    spec = LockedSpec.resolve(["beta", "gamma"], manager=driver)
    assert spec.locked == {"alpha": "2.0", "beta": "1.0", "gamma": "1.0"}
    assert [c.args[0] for c in counting.calls] == ["lock"]  # no venv, no sync, no import ray
    root = settings.root
    assert not list(root.rglob("pyvenv.cfg"))
    assert not list(root.rglob("pyproject.toml"))  # the scratch project is gone
    assert not any(Layout(root).trash_dir.iterdir())
    assert driver.list_environments() == []
    # The same spec in another order: the stored resolution, no uv at all.
    again = LockedSpec.resolve(["gamma", "beta"], manager=driver)
    assert (again.uv_lock, again.uri("2")) == (spec.uv_lock, spec.uri("2"))
    assert len(counting.calls) == 1
    records = driver.operations(workflow_id="uv-envs-ray-lock").items
    assert [(r.operation, r.metadata.get("resolved")) for r in records] == [
        ("lock", False),
        ("lock", True),
    ]
    # A node builds exactly that lock and checks Ray imports in it; it resolves nothing.
    node_counting = CountingExecutor(SubprocessUvExecutor(find_uv_binary()))
    node = EnvManager(
        attrs.evolve(settings, root=root.parent / "node"),
        executor=node_counting,
        python_finder=python_finder,
    )
    built = ensure_on(node, spec)
    assert built.locked == spec.locked
    assert node_counting.count("lock", check=False) == 0
    assert node.get(spec.key(ray.__version__)).ray is not None


def test_a_driver_env_has_the_lock_a_lock_only_resolve_gives(
    ray_manager: EnvManager, python_finder: PythonFinder
) -> None:
    lock_only = LockedSpec.resolve(["beta", "gamma"], manager=ray_manager)
    elsewhere = attrs.evolve(ray_manager.settings, root=ray_manager.settings.root.parent / "d")
    driver = EnvManager(elsewhere, python_finder=python_finder)
    built = LockedSpec.resolve(["beta", "gamma"], manager=driver, driver_env=True)
    assert built == lock_only  # resolved apart, same files
    [environment] = driver.list_environments(workflow_id="uv-envs-ray-lock")
    assert environment.python_path.is_file()  # the driver's own env, to run in
    # A lock-only resolve of a spec with a driver env reuses its stored resolution.
    assert LockedSpec.resolve(["gamma", "beta"], manager=driver).uv_lock == built.uv_lock
    operations = [r.operation for r in driver.operations(workflow_id="uv-envs-ray-lock").items]
    assert sorted(operations) == ["create", "lock"]


def test_a_worker_running_in_a_plugin_built_env_survives_the_plugins_delete_uri(
    ray_cluster: RayCluster, manager: EnvManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = LockedSpec.resolve(["beta"], manager=manager)
    actor = Reporter.options(runtime_env=plugin_runtime_env(spec)).remote()  # type: ignore[attr-defined]
    try:
        seen = ray.get(actor.where.remote("beta"), timeout=TIMEOUT)
        env_python = Path(seen["executable"])
        # Ray evicts the URI while the actor's worker still runs in the env (no lease).
        node_root = str(ray_cluster.roots[seen["node"]])
        for name, value in {**ray_cluster.node_env, "UV_ENVS_ROOT": node_root}.items():
            monkeypatch.setenv(name, value)
        plugin = UvEnvsPlugin()
        uri = spec.uri(ray.__version__)
        assert plugin.delete_uri(uri, logging.getLogger("test")) == 0
        assert env_python.parent.is_dir()
        # alpha was never imported by the worker: its files must still be there.
        later = ray.get(actor.where.remote("alpha"), timeout=TIMEOUT)
        assert later["versions"] == {"alpha": "2.0"}  # beta needs alpha>=1.0
    finally:
        ray.kill(actor)
    freed = 0.0
    for _ in range(120):  # the killed worker exits in its own time
        freed = plugin.delete_uri(uri, logging.getLogger("test"))
        if freed:
            break
        time.sleep(0.5)
    assert freed > 0
    assert not env_python.parent.exists()


def test_sixteen_tasks_for_one_new_env_on_one_node_install_it_once(
    ray_cluster: RayCluster, manager: EnvManager, python_finder: PythonFinder
) -> None:
    spec = LockedSpec.resolve(["alpha==1.0"], manager=manager)
    node = alive_nodes()[-1]
    build: Any = ray.remote(num_cpus=0, max_retries=0)(ensure_here)
    refs = [
        build.options(scheduling_strategy=pinned(node)).remote(spec, node_id=node)
        for _ in range(16)
    ]
    built = ray.get(refs, timeout=TIMEOUT)
    assert len({b.env_path for b in built}) == 1
    key = spec.key(ray.__version__)
    settings = attrs.evolve(manager.settings, root=ray_cluster.roots[node])
    there = EnvManager(settings, python_finder=python_finder)
    try:
        records = there.operations(workflow_id=key.workflow_id, node_id=key.node_id, limit=100)
    finally:
        there.close()
    operations = sorted(r.operation for r in records.items)
    assert operations == ["create"] + ["ensure"] * 15  # one install; 15 found it READY
