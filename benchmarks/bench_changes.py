"""Changes at the floor: add one package to the medium set, and delete a small env.

    python benchmarks/bench_changes.py [--rounds 6] [--ray auto|off] [--out FILE]

Two long-lived processes, as a server runs, in alternating rounds: uv-envs
(``EnvManager.add`` on an env of the medium set, then ``delete`` of an env of
``six``) and the floor, what the original service does (``uv add`` in a
project whose ``.venv`` it edits in place, then removing the project folder).
Each round adds another small package, so every add of uv-envs builds a new
generation and a new store entry (nothing of that spec exists yet); uv-envs
waits for its background compiles before each timed step. One uv cache for
both, warmed first with every package; round 0 warms each process and is not
counted. Needs the public index. Prints markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from uv_envs._uv.executor import find_uv_binary

MEDIUM = ("requests", "rich", "pydantic", "click", "jinja2")
ADDED = ("six", "toolz", "iniconfig", "tomli", "pluggy", "wrapt", "decorator", "colorama")

OURS = r"""
import glob, json, sys, time
from pathlib import Path
from uv_envs import EnvKey, EnvManager, Settings
root, cache, ray, medium = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4:]
manager = EnvManager(Settings(root=root, cache_dir=cache, ray=ray))
def settle():
    end = time.time() + 120
    while time.time() < end:
        entries = [p for p in glob.glob(f"{root}/store/*") if Path(p).is_dir()]
        if all(Path(e, ".compiled").exists() for e in entries):
            return
        time.sleep(0.1)
for n, line in enumerate(sys.stdin):
    key, small = EnvKey("bench", f"n{n}"), EnvKey("bench", f"s{n}")
    manager.create(key, packages=medium); settle()
    t = time.perf_counter(); manager.add(key, [line.strip()]); add = time.perf_counter() - t
    settle(); manager.create(small, packages=["six"]); settle()
    t = time.perf_counter(); manager.delete(small); delete = time.perf_counter() - t
    print(json.dumps({"add": add, "delete": delete}), flush=True)
"""

FLOOR = r"""
import json, os, shutil, subprocess, sys, time
from pathlib import Path
root, cache, medium = Path(sys.argv[1]), sys.argv[2], sys.argv[4:]
root.mkdir(parents=True, exist_ok=True)
env = {**{k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}, "UV_CACHE_DIR": cache}
def uv(*args, cwd):
    done = subprocess.run([sys.argv[3], *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
for n, line in enumerate(sys.stdin):
    project, small = root / f"n{n}", root / f"s{n}"
    for folder in (project, small):
        uv("init", "--bare", "--no-workspace", "-q", str(folder), cwd=root)
    uv("add", "-q", *medium, cwd=project)
    t = time.perf_counter()
    uv("add", "-q", line.strip(), cwd=project)
    add = time.perf_counter() - t
    uv("add", "-q", "six", cwd=small)
    t = time.perf_counter(); shutil.rmtree(small); delete = time.perf_counter() - t
    print(json.dumps({"add": add, "delete": delete}), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--ray", default="auto", help="uv-envs' Settings.ray (auto: linked)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    added = [ADDED[i % len(ADDED)] for i in range(args.rounds + 1)]
    with tempfile.TemporaryDirectory(prefix="bench-changes-") as tmp:
        base = Path(tmp)
        cache = base / "cache"
        subprocess.run(
            [
                find_uv_binary(),
                "pip",
                "install",
                "-q",
                "--target",
                str(base / "warm"),
                *MEDIUM,
                *ADDED,
            ],
            env={**os.environ, "UV_CACHE_DIR": str(cache)},
            check=True,
        )
        # The floor's process takes uv's path where ours takes Settings.ray.
        sides = {"uv-envs": (OURS, args.ray), "uv add in place (floor)": (FLOOR, find_uv_binary())}
        procs = {
            name: subprocess.Popen(
                [sys.executable, "-c", code, str(base / f"root{i}"), str(cache), setting, *MEDIUM],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i, (name, (code, setting)) in enumerate(sides.items())
        }
        times: dict[str, dict[str, list[float]]] = {n: {"add": [], "delete": []} for n in sides}
        for i, package in enumerate(added):
            for name in list(sides) if i % 2 == 0 else list(reversed(sides)):
                proc = procs[name]
                assert proc.stdin is not None
                assert proc.stdout is not None
                proc.stdin.write(package + "\n")
                proc.stdin.flush()
                measured = json.loads(proc.stdout.readline())
                if i:
                    for what, seconds in measured.items():
                        times[name][what].append(seconds)
        for proc in procs.values():
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait()
    load = os.getloadavg()[0]
    lines = [
        f"rounds {args.rounds}, ray={args.ray}, load average {load:.2f}",
        "",
        "| operation | uv-envs | floor | uv-envs / floor |",
        "|---|---|---|---|",
    ]
    ours, floor = times["uv-envs"], times["uv add in place (floor)"]
    for what in ("add", "delete"):
        a, b = statistics.median(ours[what]), statistics.median(floor[what])
        lines.append(f"| {what} | {a:.3f} s | {b:.3f} s | {a / b:.2f}x |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.write_text(report + "\n" + json.dumps(times) + "\n")


if __name__ == "__main__":
    main()
