"""uv-envs on Ray against Ray's own ``{"uv": [...]}`` and ``{"pip": [...]}``, side by side.

    python benchmarks/bench_ray.py [--reps N] [--sets small,medium] [--no-pip] [--out FILE]

Starts a local ``ray.cluster_utils.Cluster`` (head + 2 nodes, one CPU each, on
127.0.0.1, the uv_envs plugin loaded, a root per node) and measures, warm
caches (each route ran the set once, untimed, before the clock starts):

* first task on a new spec (a lock no route has seen: ``idna==3.<i>``
  appended): uv-envs resolves once on the driver (``LockedSpec.resolve``) and
  the plugin installs that lock on the node; Ray's fields build their own env;
* the same spec again in another package order;
* the time to get one env onto all three nodes (``uv_envs.ray.provision``),
  and whether every node has the same versions;
* the floor (``--parts floor``): a first task in a runtime env Ray has not
  seen whose ``py_executable`` is an env that exists already, so nothing is
  provisioned and all that is timed is Ray starting a worker for it.

Needs ``pip install -e '.[ray]'`` and the public index. Everything (roots, uv
and pip caches, Ray's temp dir) goes under the cluster's own folder
(``tests/support/ray_start.py``, under TMPDIR), removed at the end. Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
from package_sets import SETS  # noqa: E402 - beside this script
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from tests.support.ray_start import START_TIMEOUT, local_cluster, started_cluster  # noqa: E402
from uv_envs import EnvKey, EnvManager, Settings  # noqa: E402
from uv_envs.ray import LockedSpec, plugin_config, plugin_runtime_env, provision  # noqa: E402

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

TIMEOUT = 900


@ray.remote(num_cpus=0)
def probe() -> dict[str, Any]:
    import importlib.metadata  # noqa: PLC0415 - runs in the worker, inside the env

    return {
        "node": ray.get_runtime_context().get_node_id(),
        "executable": sys.executable,
        "versions": {
            d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()
        },
    }


def first_task(runtime_env: dict[str, Any], node: str) -> float:
    started = time.perf_counter()
    strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
    ray.get(
        probe.options(runtime_env=runtime_env, scheduling_strategy=strategy).remote(),
        timeout=TIMEOUT,
    )
    return time.perf_counter() - started


def uv_envs_task(manager: EnvManager, packages: list[str], node: str) -> float:
    started = time.perf_counter()
    spec = LockedSpec.resolve(packages, manager=manager)
    first_task(plugin_runtime_env(spec, check=False), node)
    return time.perf_counter() - started


def start_cluster(base: Path, stack: contextlib.ExitStack[Any]) -> tuple[Cluster, Path]:
    """Head + 2 nodes on 127.0.0.1, each with its own root and the plugin loaded; a driver."""
    bin_dir = str(Path(sys.executable).parent)
    node_env = {
        "RAY_RUNTIME_ENV_PLUGINS": plugin_config(),
        "UV_ENVS_CACHE_DIR": str(base / "uv-envs-cache"),
        "UV_CACHE_DIR": str(base / "uv-cache"),  # Ray's uv field
        "PIP_CACHE_DIR": str(base / "pip-cache"),  # Ray's pip field
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
    }
    cluster = local_cluster(base, stack, {**node_env, "UV_ENVS_ROOT": str(base / "n0")})
    for index in (1, 2):
        cluster.add_node(
            num_cpus=1,
            node_ip_address="127.0.0.1",
            env_vars={**node_env, "UV_ENVS_ROOT": str(base / f"n{index}")},
        )
    cluster.wait_for_nodes(timeout=START_TIMEOUT)
    ray.init(address=cluster.address, log_to_driver=False)
    stack.callback(ray.shutdown)
    return cluster, base


def latency_rows(
    driver: EnvManager, set_name: str, routes: list[str], reps: int, target: str
) -> list[str]:
    """First-task medians of each route for a new spec and for it in another order."""
    packages = SETS[set_name]
    # Warm every cache once (untimed), with a spec no timed run uses.
    # Each spec pins another idna (a requests dependency): a new lock, so a new env on the
    # node (envs are keyed by locked packages; a bare constraint would reuse one env).
    warm = [*packages, "idna==3.10"]
    uv_envs_task(driver, warm, target)
    for route in routes[1:]:
        first_task({route.split()[1]: warm}, target)
    timings: dict[str, tuple[list[float], list[float]]] = {r: ([], []) for r in routes}
    for rep in range(reps):
        spec = [*packages, f"idna==3.{4 + rep}"]
        other = list(reversed(spec))
        for route in routes:
            new, again = timings[route]
            if route == "uv-envs":
                new.append(uv_envs_task(driver, spec, target))
                again.append(uv_envs_task(driver, other, target))
            else:
                field = route.split()[1]
                new.append(first_task({field: spec}, target))
                again.append(first_task({field: other}, target))
    return [
        f"| {set_name} | {route} | {statistics.median(new):.2f} | {statistics.median(again):.2f} |"
        for route, (new, again) in timings.items()
    ]


def provision_row(driver: EnvManager, set_name: str, nodes: list[str]) -> str:
    """Time to get a new spec onto every node, and whether every node has the same versions."""
    # Warm the cache the nodes share: resolve alone would fetch no wheel.
    LockedSpec.resolve([*SETS[set_name], "requests!=0.0.998"], manager=driver, driver_env=True)
    started = time.perf_counter()
    locked = LockedSpec.resolve([*SETS[set_name], "requests!=0.0.500"], manager=driver)
    cluster_env = provision(locked, timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    seen = [
        ray.get(
            probe.options(
                runtime_env=dict(cluster_env.runtime_env),
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=n, soft=False),
            ).remote(),
            timeout=TIMEOUT,
        )
        for n in nodes
    ]
    same = all(s["versions"] == seen[0]["versions"] for s in seen)
    return f"| {set_name} | {elapsed:.2f} | {'yes' if same else 'NO'} |"


def floor_row(driver: EnvManager, nodes: list[str], reps: int) -> str:
    """Ray's own cost of a first task in a new runtime env whose interpreter exists."""
    python = str(driver.ensure(EnvKey("bench", "floor"), packages=SETS["small"]).python_path)
    # A new env var per run makes a runtime env Ray has not seen: a new worker each time.
    runtime_envs = [
        {"py_executable": python, "env_vars": {"UV_ENVS_BENCH_RUN": str(run)}}
        for run in range(reps)
    ]
    seconds = [first_task(runtime_env, nodes[-1]) for runtime_env in runtime_envs]
    return f"| {statistics.median(seconds):.2f} | {min(seconds):.2f} |"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--sets", default="small,medium")
    parser.add_argument("--no-pip", action="store_true", help="skip Ray's pip field (slow)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--parts", default="latency,provision,floor", help="which tables to make")
    args = parser.parse_args()
    sets = args.sets.split(",")
    machine = (
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, Ray {ray.__version__}; {args.reps} repetitions, "
        "medians in seconds."
    )
    lines = [machine]
    with started_cluster("rb", start_cluster) as (_, base):
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])  # type: ignore[no-untyped-call]
        driver = EnvManager(Settings(root=base / "driver", cache_dir=base / "uv-envs-cache"))
        if "latency" in args.parts:
            routes = ["uv-envs", "ray uv"] + ([] if args.no_pip else ["ray pip"])
            lines += ["", "| set | route | first task, new spec | same spec, other order |"]
            lines.append("|---|---|---|---|")
            for set_name in sets:
                lines += latency_rows(driver, set_name, routes, args.reps, nodes[-1])
                print("\n".join(lines[-len(routes) :]), flush=True)
        if "provision" in args.parts:
            lines += ["", "| set | provision on 3 nodes (s) | identical versions on every node |"]
            lines.append("|---|---|---|")
            lines += [provision_row(driver, set_name, nodes) for set_name in sets]
        if "floor" in args.parts:
            lines += ["", "| floor: first task, new runtime env, env exists (median) | min |"]
            lines += ["|---|---|", floor_row(driver, nodes, args.reps)]
        driver.close()
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
