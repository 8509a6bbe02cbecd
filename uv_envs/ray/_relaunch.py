"""A worker's start on a changed copy: the copy rebuilt from its lock, then the worker.

``python -m uv_envs.ray._relaunch ROOT WORKFLOW NODE VERSION PROGRAM ARGS...``
is what the launcher (:mod:`uv_envs._store.stamps`) hands a copy to when its
cheap check differs, for the ``uv_envs`` field's envs (no server's round heals
those): ``repair`` of the env in the node's root (every file hashed, an audited
``verify``, a damaged copy rebuilt from its lock), then ``os.execv`` of
``PROGRAM ARGS...`` (the same pid for the Raylet). An env it cannot repair is
refused with what was found, exit status :data:`~uv_envs._store.stamps.DAMAGED`;
the worker does not start. It runs with the node's Python (uv-envs installed),
started by the Raylet as the worker, so its messages go to the worker's log.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence

from uv_envs._errors import UvEnvsError
from uv_envs._models import EnvKey
from uv_envs._store.stamps import DAMAGED, become

from ._install import node_manager

#: The arguments before the worker's program: the root and the env's key.
_OWN = 4


def command(root: str, key: EnvKey) -> list[str]:
    """The launcher's ``on_damage`` for ``key`` under ``root``, run with this Python."""
    return [sys.executable, "-m", __name__, root, key.workflow_id, key.node_id, key.version_id]


def main(argv: Sequence[str]) -> int:
    """Repair the env, then become the worker; ``DAMAGED`` if it could not be repaired."""
    root, workflow, node, version = argv[:_OWN]
    key = EnvKey(workflow, node, version)
    try:
        with contextlib.closing(node_manager(root)) as manager:
            report = manager.repair(key)
    except UvEnvsError as exc:
        problem = str(exc)
    else:
        problem = "; ".join([*report.failed.values(), *report.unreadable.values()])
        if report.ok:
            sys.stderr.write(f"uv-envs: rebuilt {key}; starting the worker\n")
            sys.stderr.flush()
            return become(argv[_OWN], argv[_OWN + 1 :])
    sys.stderr.write(f"uv-envs: could not rebuild {key}: {problem}\n")
    return DAMAGED


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
