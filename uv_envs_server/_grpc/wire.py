"""Proto messages to core values and back: the servicer's vocabulary, with no logic of its own."""

from __future__ import annotations

import json
from typing import Protocol

import uv_envs

from .proto import pb


class Identified(Protocol):
    # Every request that names one env: workflow_id = 1, node_id = 2, version_id = 3.
    @property
    def workflow_id(self) -> str: ...
    @property
    def node_id(self) -> str: ...
    @property
    def version_id(self) -> str: ...


#: Core statuses outside the contract's CREATING/READY/FAILED/NOT_FOUND, sent as the
#: nearest one: neither can be used. ``metadata_json`` carries the real status and why.
WIRE_STATUS = {
    uv_envs.EnvStatus.DAMAGED: "FAILED",
    uv_envs.EnvStatus.UNREADABLE: "FAILED",
    # Withdrawn by a deferred delete: gone for every client, a create makes a fresh env.
    uv_envs.EnvStatus.DELETING: "NOT_FOUND",
}

#: Trailing metadata of a DEFERRED DeleteEnv: what still holds the env.
HELD_BY_KEY = "uv-envs-held-by"


def holders(text: str) -> tuple[tuple[int, ...], int]:
    """The pids and lease count :func:`held_by` wrote (nothing for an empty text)."""
    pairs = [item.split("=", 1) for item in text.split(",") if "=" in item]
    pids = tuple(int(v) for k, v in pairs if k == "pid" and v.isdigit())
    leases = sum(int(v) for k, v in pairs if k == "leases" and v.isdigit())
    return pids, leases


def holding_nodes(text: str) -> tuple[str, ...]:
    """The other machines :func:`held_by` named (``node=ID@ADDRESS`` items)."""
    pairs = [item.split("=", 1) for item in text.split(",") if "=" in item]
    return tuple(v for k, v in pairs if k == "node")


def held_by(result: uv_envs.DeleteResult) -> str:
    """``pid=1,pid=2,leases=1,node=ID@ADDRESS``: what holds a deferred delete's env.

    For trailing metadata and logs; ``node`` items name the other machines of
    a served Ray cluster that keep a copy for now.
    """
    parts = [f"pid={pid}" for pid in result.held_by]
    if result.leases:
        parts.append(f"leases={result.leases}")
    return ",".join([*parts, *(f"node={node}" for node in result.held_on)])


def key(request: Identified) -> uv_envs.EnvKey:
    # Raises InvalidIdentifier (INVALID_ARGUMENT) for a bad or missing id.
    return uv_envs.EnvKey(request.workflow_id, request.node_id, request.version_id)


def ident(request: Identified) -> dict[str, str]:
    return {
        "workflow_id": request.workflow_id,
        "node_id": request.node_id,
        "version_id": request.version_id,
    }


def requirements_text(content: bytes, name: str) -> str | None:
    if not content:
        return None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError as exc:
        label = name or "requirements_file_content"
        msg = f"{label} is not UTF-8 text: {exc.reason} at byte {exc.start}"
        raise uv_envs.InvalidInput(msg) from exc


def to_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def no_requirements_file(request: pb.DepsRequest, rpc: str) -> None:
    if request.requirements_file_content:
        msg = f"{rpc} takes package names only, not a requirements file"
        raise uv_envs.InvalidInput(msg)


#: Audit record fields the proto and the core spell and type alike.
_SAME_FIELDS = ("id", "workflow_id", "node_id", "version_id", "operation", "stdout", "stderr")


def record(item: uv_envs.OperationRecord) -> pb.OperationRecord:
    # Proto3 has no null: unset times and durations are 0, an unset exit code is -1.
    return pb.OperationRecord(
        **{name: getattr(item, name) for name in _SAME_FIELDS},
        status=item.status,
        started_at_unix=int(item.started_at),
        finished_at_unix=int(item.finished_at or 0),
        duration_ms=item.duration_ms or 0,
        exit_code=-1 if item.exit_code is None else item.exit_code,
        error=item.error or "",
        metadata_json=to_json(dict(item.metadata)),
    )


def record_of(item: pb.OperationRecord) -> uv_envs.OperationRecord:
    # The reverse of record(): 0 and -1 stand for "not set".
    finished = float(item.finished_at_unix) if item.finished_at_unix else None
    return uv_envs.OperationRecord(
        **{name: getattr(item, name) for name in _SAME_FIELDS},
        status=uv_envs.OperationStatus(item.status),
        started_at=float(item.started_at_unix),
        finished_at=finished,
        duration_ms=item.duration_ms if finished is not None else None,
        exit_code=None if item.exit_code == -1 else item.exit_code,
        error=item.error or None,
        metadata=json.loads(item.metadata_json or "{}"),
    )
