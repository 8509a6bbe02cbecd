"""One process of the multi-process stress test: seeded random operations on shared keys.

Usage: python tests/support/stress_worker.py ROOT CACHE FIND_LINKS SEED OPERATIONS KEYS

Prints one JSON line per operation: the operation, the key, the outcome (``ok``
or the error class) and the audit record it must have left (``null`` when the
operation is not recorded: status, a delete of nothing, a refusal before the
operation started).
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from uv_envs import (
    EnvironmentAlreadyExists,
    EnvironmentInUse,
    EnvironmentNotFound,
    EnvironmentNotReady,
    EnvKey,
    EnvManager,
    IndexSettings,
    InvalidRequirement,
    Settings,
    UvError,
)

SPECS = (
    ["alpha"],
    ["alpha==1.0"],
    ["beta"],
    ["gamma"],
    ["delta"],
    ["beta", "gamma"],
    ["delta", "gamma"],
    ["delta", "alpha==2.0"],  # a conflict: uv fails, nothing changes
    ["nosuch"],  # not in the wheelhouse: uv fails
)
ADDS = (["gamma"], ["alpha==1.0"], ["alpha==2.0"], ["beta"], ["delta"], ["nosuch"])
NAMES = ("alpha", "beta", "gamma", "delta")
OPERATIONS = ("create", "ensure", "ensure", "add", "remove", "sync", "delete", "status")


def main() -> None:
    root, cache, find_links, seed, count, keys = sys.argv[1:]
    settings = Settings(
        root=Path(root),
        cache_dir=Path(cache),
        index=IndexSettings(find_links=(find_links,), no_index=True),
        lock_timeout=300,
        uv_timeout=300,
    )
    manager = EnvManager(settings)
    rng = random.Random(seed)
    for _ in range(int(count)):
        key = EnvKey("stress", "node", f"k{rng.randrange(int(keys))}")
        operation = rng.choice(OPERATIONS)
        recorded: str | None = None
        try:
            if operation in {"create", "ensure"}:
                getattr(manager, operation)(key, packages=rng.choice(SPECS))
                recorded = "SUCCESS"
            elif operation == "add":
                manager.add(key, rng.choice(ADDS))
                recorded = "SUCCESS"
            elif operation == "remove":
                manager.remove(key, [rng.choice(NAMES)])
                recorded = "SUCCESS"
            elif operation == "sync":
                manager.sync(key)
                recorded = "SUCCESS"
            elif operation == "delete":
                # A delete deferred because a process still uses the env (another
                # worker's uv probing the store entry it shares) is recorded too.
                status = manager.delete(key).status
                recorded = "SUCCESS" if status in {"DELETED", "DEFERRED"} else None
            else:
                manager.status(key)
            outcome = "ok"
        except UvError as exc:
            outcome, recorded = type(exc).__name__, "FAILED"
        except (
            EnvironmentNotFound,
            EnvironmentAlreadyExists,
            InvalidRequirement,
            EnvironmentInUse,
            EnvironmentNotReady,  # add/remove/sync of an env another worker withdrew
        ) as exc:
            # Refused before the operation started: not recorded.
            outcome = type(exc).__name__
        line = {"op": operation, "key": str(key), "outcome": outcome, "recorded": recorded}
        print(json.dumps(line), flush=True)
    manager.close()


if __name__ == "__main__":
    main()
