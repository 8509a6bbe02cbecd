"""Holds a lease on an env until killed (for the test that a lease dies with its process)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from uv_envs import EnvKey, EnvManager, Settings

root, workflow, node, version = sys.argv[1:]
manager = EnvManager(Settings(root=Path(root)))
with manager.lease(EnvKey(workflow, node, version)):
    print("LEASED", flush=True)
    time.sleep(600)
