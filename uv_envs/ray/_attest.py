"""A node proves its copy of an env before a worker runs from it, and to the reconciling round.

Every hand-out on a node ends in ``EnvManager.install_exact`` (the one install
path, :mod:`uv_envs.ray._install`), which checks a copy already at the lock
before handing it out and rebuilds it from the lock when damaged
(:mod:`uv_envs._core.handout`). The plugins call that path whenever the cheap
check here finds the copy changed on disk (:func:`quick_changes`: the sizes and
modification times recorded at install, :mod:`uv_envs._store.manifest`, a
``stat`` per file) or without a manifest; a copy as built costs only that.

The server's reconciling round asks each node :func:`attest_here`: the same
cheap check of each copy, hashed (``verify``, audited, DAMAGED recorded) when
it differs; the digest and the time of the check are what the cluster view
shows, and a damaged copy is installed again by the round (so rebuilt from the
lock).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from uv_envs._errors import UvEnvsError
from uv_envs._manager import EnvManager
from uv_envs._models import EnvKey, EnvStatus
from uv_envs._store import stamps
from uv_envs._store.envdirs import current_dir
from uv_envs._store.manifest import quick_check


@attrs.frozen
class CopyCheck:
    """One node's copy of one env as checked.

    ``digest`` is the copy's env digest (the recorded one when the cheap check
    passed, the one its files give when they were hashed); ``checked_at`` when
    the check began (epoch seconds); ``full`` says the
    files were hashed; ``damage`` is what was found wrong (empty when sound).
    """

    digest: str
    checked_at: float
    full: bool = False
    damage: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return attrs.asdict(self) | {"damage": list(self.damage)}


def check_copy(manager: EnvManager, key: EnvKey) -> CopyCheck:
    """Check this node's copy of ``key``: cheap first, every file hashed when that differs.

    Hashing goes through ``verify``: audited, and DAMAGED recorded when damaged.
    """
    started = time.time()  # what the check saw is the copy as of its start
    environment = manager.get(key)
    changed = quick_check(current_dir(environment) / ".venv")
    if changed == [] and environment.status is EnvStatus.READY:
        return CopyCheck(environment.digest, started)
    report = manager.verify(key)
    return CopyCheck(report.digest, started, full=True, damage=tuple(report.problems))


def python_exists(env_path: str) -> bool:
    """Whether the env's interpreter is on this node (one ``stat``)."""
    return (Path(env_path) / ".venv" / "bin" / "python").exists()


def checked_executable(python: str, on_damage: Sequence[str] = ()) -> str:
    """The ``py_executable`` a worker starts through: ``python``, once its venv passes the check.

    Ray's agent sets a runtime env up once per node and hands the same context
    to every later worker of it without asking a plugin again (its cache of
    created runtime envs, ``runtime_env_agent.py``), so a copy damaged after the
    first worker started would run later workers silently. So the context names
    a command (:func:`uv_envs._store.stamps.check_command`): the env's own
    interpreter runs the cheap check, stdlib only, then becomes ``python``
    with Ray's arguments (same pid); a changed copy is refused with what
    changed (the Raylet's log, shown on the driver) and the worker does not
    start until the copy is rebuilt; or, given ``on_damage`` (a command,
    :mod:`uv_envs.ray._relaunch`), rebuilt by that first. A venv without a
    manifest is left as is.
    """
    venv = os.path.dirname(os.path.dirname(python))  # noqa: PTH120 - <venv>/bin/python
    if not os.path.exists(stamps.manifest_file(venv)):  # noqa: PTH110 - one stat, plain strings
        return python
    return stamps.check_command(python, venv, on_damage)


def quick_changes(env_path: str) -> list[str] | None:
    """The cheap check of the env at ``env_path`` (its current venv); ``None``: no manifest."""
    return quick_check(Path(env_path) / ".venv")


def attest_here(
    root: str, keys: Mapping[str, EnvKey], locks: Mapping[str, str]
) -> dict[str, CopyCheck | None]:
    """For each env path: this node's copy checked (not repaired), or ``None`` if not held.

    ``keys`` and ``locks`` map each env path to its key and lock digest; a copy
    at another lock, or without an interpreter, is not held. A ``stat`` per file
    for a sound copy; a damaged one is reported (and recorded DAMAGED here), and
    the round's install of it rebuilds it.
    """
    from ._install import node_manager  # noqa: PLC0415 - _install is imported by the plugins
    from ._replica import present_here  # noqa: PLC0415 - _replica imports _install

    found: dict[str, CopyCheck | None] = dict.fromkeys(locks)
    with contextlib.closing(node_manager(root)) as manager:
        for env_path, present in present_here(locks).items():
            if not present:
                continue
            try:
                found[env_path] = check_copy(manager, keys[env_path])
            except UvEnvsError:
                found[env_path] = None  # gone or unreadable here: installed again
    return found
