"""Runs one manager operation in slow motion, for the crash test to kill at a random moment.

Usage: python tests/support/crash_worker.py ROOT CACHE FIND_LINKS UV_BINARY SLOWMO OPERATION
       WORKFLOW NODE VERSION [PACKAGE...]

SLOWMO seconds are slept at every call made by uv_envs code (Python and C calls:
``os.replace``, ``os.symlink``, ``shutil.rmtree`` ...), so the operation's
file-system steps are spread over time and a kill lands between any two of
them. UV_BINARY may be a wrapper that sleeps before running uv, so that uv's
own process lives long enough to be killed. Prints ``START`` just before the
operation, then ``DONE`` or ``ERROR <class>``; ``COUNT`` as operation counts
the profiled calls instead (to calibrate SLOWMO).

With ``CRASH_PAUSE_AT=STEP:N`` in the environment, the worker prints ``PAUSED``
and sleeps just before the N-th time STEP happens, so a test can kill it at
exactly that step. STEP is a uv_envs function being entered
(``_seal``) or ``CALLER>FUNCTION``, a C function called from a uv_envs
function (``write_atomic>replace``, ``point_current>symlink``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from types import FrameType

import uv_envs
from uv_envs import EnvKey, EnvManager, IndexSettings, Settings, SubprocessUvExecutor

PACKAGE_DIR = str(Path(uv_envs.__file__).parent)


def main() -> int:  # noqa: C901 - one flat dispatch over the operations a crash test names
    root, cache, find_links, uv_binary, slowmo, operation, workflow, node, version, *packages = (
        sys.argv[1:]
    )
    settings = Settings(
        root=Path(root),
        cache_dir=Path(cache),
        index=IndexSettings(find_links=(find_links,), no_index=True),
        lock_timeout=120,
        uv_timeout=300,
    )
    manager = EnvManager(settings, executor=SubprocessUvExecutor(uv_binary))
    manager._core.services.python_finder.find(settings.default_python)  # warm up outside the window
    key = EnvKey(workflow, node, version)
    delay = float(slowmo)
    calls = 0
    pause_step, pause_count = (os.environ.get("CRASH_PAUSE_AT") or ":0").split(":")
    pause_left = int(pause_count)

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls, pause_left
        filename = frame.f_code.co_filename
        if event in {"call", "c_call"} and filename.startswith(PACKAGE_DIR):
            calls += 1
            if delay:
                time.sleep(delay)
            step = frame.f_code.co_name
            if event == "c_call":
                step += ">" + getattr(arg, "__name__", "")
            if pause_left and step == pause_step:
                pause_left -= 1
                if not pause_left:
                    print("PAUSED", flush=True)
                    time.sleep(600)

    print("START", flush=True)
    sys.setprofile(profile)
    try:
        if operation == "create":
            manager.create(key, packages=packages)
        elif operation == "add":
            manager.add(key, packages)
        elif operation == "delete":
            manager.delete(key)
        else:
            msg = f"unknown operation {operation}"
            raise ValueError(msg)  # noqa: TRY301 - reported like any other failure
    except Exception as exc:  # reported to the test, which decides
        sys.setprofile(None)
        print(f"ERROR {type(exc).__name__}: {exc}".splitlines()[0], flush=True)
        return 1
    sys.setprofile(None)
    print(f"DONE {calls}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
