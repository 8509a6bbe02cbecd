"""Runs one manager operation in its own process, for concurrency and crash tests.

Usage: python tests/support/proc_worker.py ROOT CACHE FIND_LINKS DELAY OPERATION WORKFLOW NODE
    VERSION [PACKAGE...]
DELAY seconds are slept before each ``uv sync``, to widen the window a test
aims at (a concurrent operation, or a kill).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from uv_envs import EnvKey, EnvManager, IndexSettings, Settings, SubprocessUvExecutor
from uv_envs._uv.commands import UvInvocation
from uv_envs._uv.executor import UvResult, find_uv_binary


class SlowSync:
    def __init__(self, delay: float) -> None:
        self.inner = SubprocessUvExecutor(find_uv_binary())
        self.delay = delay

    def run(self, invocation: UvInvocation) -> UvResult:
        if invocation.args[:1] == ("sync",):
            print("SYNCING", flush=True)
            time.sleep(self.delay)
        return self.inner.run(invocation)


def main() -> None:
    root, cache, find_links, delay, operation, workflow, node, version, *packages = sys.argv[1:]
    settings = Settings(
        root=Path(root),
        cache_dir=Path(cache),
        index=IndexSettings(find_links=(find_links,), no_index=True),
        lock_timeout=120,
    )
    manager = EnvManager(settings, executor=SlowSync(float(delay)))
    key = EnvKey(workflow, node, version)
    if operation == "create":
        manager.create(key, packages=packages)
    elif operation == "add":
        manager.add(key, packages)
    elif operation == "delete":
        manager.delete(key)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
