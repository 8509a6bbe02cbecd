"""A first task through the uv_envs plugin against Ray's floor, measured in the same run.

    python benchmarks/bench_ray_floor.py [--reps N] [--sets S] [--caches warm,cold] [--vary P]

Issue 33, item 4. A local cluster (``tests/support/ray_start.py``): a head and
one worker node with a root and uv cache of its own (2 cores: kept small).
Every round, for a new spec (the set plus another pin of ``--vary``, ``click``
by default or ``idna``: a new lock, resolved once on the driver, untimed in the
task figures, reported apart):

* **ours**: a task that imports the set, ``runtime_env={"uv_envs": ...}``, on
  the worker node: the plugin installs the lock there, Ray starts the worker;
* **Ray uv**: the same task with Ray's own ``{"uv": [...]}`` field;
* **floor**: ``uv sync --frozen`` of the same lock into a fresh venv from the
  node's cache (its uv-envs cache when warm, an empty one when cold), plus
  the same task in a new runtime env whose ``py_executable`` is that venv once
  compiled and linked to Ray (an env that exists on the node: nothing to
  install, Ray starts a worker, the task imports).

Ours and Ray's field alternate their order each round. Warm: the node's
caches saw the set once before (untimed). Cold: every round adds a node whose
root and caches are empty, and removes it after. Ours is split into Ray's
steps from the node's runtime-env agent log and the worker's own clock:
before the plugin starts, the plugin's install, until the worker process
exists, the worker's start (``import ray``, connect), the imports.
Needs the ``ray`` extra and the public index. Prints markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# Keeps every address of the local cluster on loopback.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ray  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from tests.support.ray_start import START_TIMEOUT, local_cluster, started_cluster  # noqa: E402
from uv_envs import EnvManager, Settings  # noqa: E402
from uv_envs.ray import LockedSpec, plugin_config, plugin_runtime_env  # noqa: E402

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

TIMEOUT = 900
#: Issue 33's sets: what each installs, and the modules its task imports.
SETS = {
    "medium": (("requests", "rich", "pydantic", "click", "jinja2"),) * 2,
    "example": (("langchain", "chromadb"), ("langchain", "chromadb")),
}
#: A new spec each round must be a new lock (envs are keyed by their locked packages):
#: each round pins another version of a small pure-Python dependency of both sets.
#: ``import ray`` imports idna (through requests) and not click: a new spec that
#: changes idna pays the Ray check of the new entry, one that changes click carries it over.
PINS = {
    "click": [f"click==8.1.{patch}" for patch in (3, 4, 5, 6, 7, 8)],
    "idna": [f"idna==3.{minor}" for minor in (4, 5, 6, 7, 8, 9)],
}
STEPS = ("before plugin", "plugin install", "to worker process", "worker start", "imports")


@ray.remote(num_cpus=0)
def importer(modules: list[str]) -> dict[str, float]:
    import importlib  # noqa: PLC0415 - in the worker

    started = time.time()
    for name in modules:
        importlib.import_module(name)
    done = time.time()
    # The process's start on this machine's clock: its age from /proc, by the boot clock.
    ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
    age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    process = time.time() - age
    return {"process": process, "task": started, "imported": done}


class Node:
    """A worker node: its id, its root and caches."""

    def __init__(self, cluster: Cluster, base: Path, name: str) -> None:
        self.base = base / name
        self.cache = self.base / "uv-envs-cache"
        env = {
            "RAY_RUNTIME_ENV_PLUGINS": plugin_config(),
            "UV_ENVS_ROOT": str(self.base / "root"),
            "UV_ENVS_CACHE_DIR": str(self.cache),
            "UV_CACHE_DIR": str(self.base / "uv-cache"),  # Ray's uv field
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        }
        before = {n["NodeID"] for n in ray.nodes() if n["Alive"]}  # type: ignore[no-untyped-call]
        self.handle = cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1", env_vars=env)
        cluster.wait_for_nodes(timeout=START_TIMEOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}  # type: ignore[no-untyped-call]
            if alive - before or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.id = next(iter(alive - before))
        self.session = Path(self.handle.get_session_dir_path())

    def run(
        self, runtime_env: dict[str, Any], modules: list[str]
    ) -> tuple[float, dict[str, float]]:
        strategy = NodeAffinitySchedulingStrategy(node_id=self.id, soft=False)
        submitted = time.time()
        ref = importer.options(runtime_env=runtime_env, scheduling_strategy=strategy)
        seen = ray.get(ref.remote(modules), timeout=TIMEOUT)
        return submitted, {**seen, "done": time.time()}


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def plugin_window(session: Path, since: float) -> tuple[float, float] | None:
    """When the node's agent started and ended the plugin's first install after ``since``."""
    for log in sorted(session.glob("logs/runtime_env*.log")):
        start = None
        for line in log.read_text(errors="replace").splitlines():
            stamp = _STAMP.match(line)
            if stamp is None:
                continue
            when = datetime.strptime(stamp[1], "%Y-%m-%d %H:%M:%S,%f").timestamp()  # noqa: DTZ007
            if "uv_envs: installing the locked spec" in line and when >= since - 0.01:
                start = when
            elif "uv_envs: env ready at" in line and start is not None:
                return start, when
    return None


def floor_sync(spec: LockedSpec, cache: Path, scratch: Path) -> tuple[float, Path]:
    """``uv sync --frozen`` of the lock into a fresh venv from ``cache``; its seconds, the venv."""
    project = scratch / f"p{time.monotonic_ns()}"
    project.mkdir(parents=True)
    (project / "pyproject.toml").write_text(spec.pyproject_toml)
    (project / "uv.lock").write_text(spec.uv_lock)
    env = {**os.environ, "UV_CACHE_DIR": str(cache), "UV_PROJECT_ENVIRONMENT": str(project / "v")}
    command = ["uv", "sync", "--frozen", "--no-install-project", "--python", spec.python]
    started = time.perf_counter()
    subprocess.run(command, cwd=project, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    venv = project / "v"
    # The floor's env exists on the node: compiled, and linked to this Ray as ours are.
    subprocess.run([str(venv / "bin/python"), "-m", "compileall", "-q", str(venv)], check=False)
    site = next(venv.glob("lib/python*/site-packages"))
    (site / "_ray.pth").write_text(str(Path(ray.__file__).parents[1]) + "\n")
    return seconds, venv


def one_round(  # noqa: PLR0913 - one round's parts
    node: Node,
    driver: EnvManager,
    spec_packages: list[str],
    modules: list[str],
    *,
    cold: bool,
    ours_first: bool,
    scratch: Path,
) -> dict[str, Any]:
    started = time.perf_counter()
    spec = LockedSpec.resolve(spec_packages, manager=driver)
    out: dict[str, Any] = {"resolve": time.perf_counter() - started}
    routes = ["ours", "ray uv"] if ours_first else ["ray uv", "ours"]
    for route in routes:
        if route == "ours":
            submitted, seen = node.run(plugin_runtime_env(spec, check=False), modules)
            out["ours"] = seen["done"] - submitted
            window = plugin_window(node.session, submitted)
            if window is not None:
                out["steps"] = [
                    window[0] - submitted,
                    window[1] - window[0],
                    seen["process"] - window[1],
                    seen["task"] - seen["process"],
                    seen["imported"] - seen["task"],
                ]
        else:
            submitted, seen = node.run({"uv": spec_packages}, modules)
            out["ray uv"] = seen["done"] - submitted
    cache = scratch / f"empty{time.monotonic_ns()}" if cold else node.cache
    out["sync"], venv = floor_sync(spec, cache, scratch)
    run_env = {"py_executable": str(venv / "bin/python"), "env_vars": {"B": str(time.time())}}
    submitted, seen = node.run(run_env, modules)
    out["task"] = seen["done"] - submitted
    out["task steps"] = [
        seen["process"] - submitted,
        seen["task"] - seen["process"],
        seen["imported"] - seen["task"],
    ]
    return out


def median(rounds: list[dict[str, Any]], name: str) -> float:
    return float(statistics.median(r[name] for r in rounds))


def report(set_name: str, cache: str, rounds: list[dict[str, Any]]) -> list[str]:
    floor = median(rounds, "task") + median(rounds, "sync")
    ours, ray_uv = median(rounds, "ours"), median(rounds, "ray uv")
    verdict = "met" if ours <= 1.15 * floor else "**missed**"
    row = (
        f"| {set_name} | {cache} | {median(rounds, 'task'):.2f} + {median(rounds, 'sync'):.2f}"
        f" = {floor:.2f} | {ours:.2f} | {ours / floor:.2f}x ({verdict}) | {ray_uv:.2f} | "
        f"{ray_uv / ours:.1f}x | {median(rounds, 'resolve'):.2f} |"
    )
    steps = [r["steps"] for r in rounds if "steps" in r]
    split = " / ".join(f"{statistics.median(s[i] for s in steps):.2f}" for i in range(len(STEPS)))
    floor_split = " / ".join(
        f"{statistics.median(r['task steps'][i] for r in rounds):.2f}" for i in range(3)
    )
    return [row, f"| {set_name} | {cache} | {split} | {floor_split} |"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--sets", default="medium,example")
    parser.add_argument("--caches", default="warm,cold")
    parser.add_argument(
        "--vary", choices=sorted(PINS), default="click", help="the pin a round changes"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rows: list[str] = []
    splits: list[str] = []
    loads: list[float] = []

    def start(base: Path, stack: contextlib.ExitStack[Any]) -> tuple[Cluster, Path]:
        cluster = local_cluster(base, stack, {"RAY_RUNTIME_ENV_PLUGINS": plugin_config()})
        ray.init(address=cluster.address, log_to_driver=False)
        stack.callback(ray.shutdown)
        return cluster, base

    with started_cluster("rf", start) as (cluster, base):
        driver = EnvManager(Settings(root=base / "driver", cache_dir=base / "driver-cache"))
        scratch = base / "scratch"
        warm = Node(cluster, base, "warm")
        pins = PINS[args.vary]
        for set_name in args.sets.split(","):
            packages, modules = (list(p) for p in SETS[set_name])
            # Warm the driver's resolver and the warm node's caches (untimed).
            one_round(
                warm,
                driver,
                [*packages, "requests!=0.0.999"],
                modules,
                cold=False,
                ours_first=True,
                scratch=scratch,
            )
            for cache in args.caches.split(","):
                rounds = []
                for rep in range(args.reps):
                    spec = [*packages, pins[rep]]
                    node = warm if cache == "warm" else Node(cluster, base, f"c{set_name}{rep}")
                    loads.append(os.getloadavg()[0])
                    rounds.append(
                        one_round(
                            node,
                            driver,
                            spec,
                            modules,
                            cold=cache == "cold",
                            ours_first=rep % 2 == 0,
                            scratch=scratch,
                        )
                    )
                    if node is not warm:
                        cluster.remove_node(node.handle)
                        shutil.rmtree(node.base, ignore_errors=True)
                    print(set_name, cache, rounds[-1], flush=True)
                row, split = report(set_name, cache, rounds)
                rows.append(row)
                splits.append(split)
        driver.close()
        # Printed before the teardown, which removes gigabytes of roots and caches.
        lines = [
            (
                f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
                f"{platform.python_version()}, Ray {ray.__version__}; medians of {args.reps} "
                f"rounds, seconds; 1-minute load at the rounds' starts "
                f"{min(loads):.1f}-{max(loads):.1f}."
            ),
            "",
            (
                "| set | cache | floor: task in an existing env + `uv sync --frozen` "
                "| ours: first task | ours / floor (<= 1.15x) | Ray `uv` field | Ray `uv` / ours "
                "| resolve on the driver |"
            ),
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            (
                f"| set | cache | ours: {' / '.join(STEPS)} | floor task: to worker process "
                "/ worker start / imports |"
            ),
            "|---|---|---|---|",
            *splits,
        ]
        print("\n".join(lines), flush=True)
    text = "\n".join(lines)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
