"""The JSON answers of the HTTP API, as pydantic models (FastAPI makes the OpenAPI schema of them).

Answers are built from the core's attrs models by the ``*_json`` functions;
the models only describe them. The request bodies are in :mod:`.bodies`.
"""

from __future__ import annotations

from typing import Any, Literal

import attrs
from pydantic import BaseModel, Field

import uv_envs
from uv_envs_server._http.v1.bodies import ExportFormat


class Spec(BaseModel):
    """What an env was asked to contain."""

    packages: list[str]
    python: str
    requirements_text: str | None


class NodeJson(BaseModel):
    """One node of a served Ray cluster and its copy of an env."""

    node_id: str
    address: str
    state: Literal["present", "missing", "failed"]
    error: str | None
    next_retry: str | None = Field(None, description="next try of a failed copy (ISO 8601, UTC)")
    digest: str | None = Field(default=None, description="its copy's digest at its last check")
    checked_at: float | None = Field(default=None, description="that check's time (epoch s)")
    digest_matches: bool | None = Field(default=None, description="it is the server's digest")


class EnvJson(BaseModel):
    """One environment: paths, status, spec, generation and the runtime env."""

    workflow_id: str
    node_id: str
    version_id: str
    env_path: str
    python_path: str
    venv_path: str
    pinned_python_path: str
    status: uv_envs.EnvStatus
    spec: Spec
    spec_hash: str
    python_version: str
    generation: int
    created_at: float
    updated_at: float
    error: str | None
    digest: str = Field(
        default="",
        description="the env digest of the installed files (sha256:...), the same for one lock "
        "on one platform and Python on every node; empty for an env installed before digests",
    )
    runtime_env: dict[str, Any] = Field(description="what a runner needs; py_executable for Ray")
    ray_runtime_env: dict[str, Any] | None = Field(
        default=None,
        description="a Ray runtime_env (py_executable, env_vars); null for an env on another "
        "Python minor than the cluster's",
    )
    nodes: list[NodeJson] | None = Field(
        default=None,
        description="served to a Ray cluster (--ray-address): each alive node's copy; "
        "null when the server serves one host",
    )


class EnvList(BaseModel):
    """``GET /v1/envs``."""

    environments: list[EnvJson]


class StatusJson(BaseModel):
    """``GET /v1/envs/{w}/{n}/{v}``: the env's status, its files, and the env itself."""

    workflow_id: str
    node_id: str
    version_id: str
    status: uv_envs.EnvStatus
    env_path: str
    has_pyproject: bool
    has_uv_lock: bool
    has_venv: bool
    environment: EnvJson | None


class DeletedJson(BaseModel):
    """``DELETE /v1/envs/{w}/{n}/{v}``: DELETED, NOT_FOUND when there was nothing, or DEFERRED.

    DEFERRED: in use, so withdrawn now and removed once ``held_by`` (pids) and
    ``leases`` have ended; on a served Ray cluster, ``held_on`` names the other
    machines (``node_id@address``) that keep a copy until a process there ends.
    """

    workflow_id: str
    node_id: str
    version_id: str
    status: uv_envs.DeleteStatus
    held_by: list[int] = []
    leases: int = 0
    held_on: list[str] = []


class DepsJson(BaseModel):
    """Declared requirements and the versions uv.lock pins."""

    declared: list[str]
    locked: dict[str, str]


class OperationJson(BaseModel):
    """The result of add, update, remove and sync: the env as it now is, and uv's output."""

    operation: str
    status: Literal["SUCCESS"]
    stdout: str
    stderr: str
    exit_code: int
    duration_ms: int
    environment: EnvJson
    #: False when add, update or remove left the project as it was (same generation).
    changed: bool = True


class VerifyJson(BaseModel):
    """What verify found; ``problems`` is empty for a healthy env."""

    ok: bool
    problems: list[str]
    checked_files: int
    digest: str = Field(default="", description="the env digest of the files as found on disk")


class ExportJson(BaseModel):
    """The exported files by name (``pyproject.toml`` and ``uv.lock`` for ``project``)."""

    format: ExportFormat
    files: dict[str, str]


class ProcessJson(BaseModel):
    """A live process that uses an env."""

    pid: int
    description: str


class InUseJson(BaseModel):
    """An env cleanup left because live processes use it."""

    key: str
    processes: list[ProcessJson]


class CleanupJson(BaseModel):
    """What cleanup deleted and what it left."""

    deleted: list[str]
    skipped_busy: list[str]
    skipped_leased: list[str]
    skipped_in_use: list[InUseJson]
    store_entries_in_use: int
    pruned_generations: int
    pruned_store_entries: int
    pruned_locks: int
    bytes_in_use: int | None
    checked_at: float


class RecordJson(BaseModel):
    """One audit record."""

    id: int
    workflow_id: str
    node_id: str
    version_id: str
    operation: str
    status: uv_envs.OperationStatus
    started_at: float
    finished_at: float | None
    duration_ms: int | None
    stdout: str
    stderr: str
    exit_code: int | None
    error: str | None
    metadata: dict[str, Any]


class OperationsJson(BaseModel):
    """A page of the audit trail, newest first."""

    total: int
    limit: int
    offset: int
    items: list[RecordJson]


class DeletedOperationsJson(BaseModel):
    """What ``DELETE /v1/operations`` removed."""

    workflow_id: str
    node_id: str
    deleted_count: int
    deleted_node_ids: list[str]


def key_json(key: uv_envs.EnvKey) -> dict[str, str]:
    """The three ids of a key."""
    return {"workflow_id": key.workflow_id, "node_id": key.node_id, "version_id": key.version_id}


def env_json(
    environment: uv_envs.Environment, nodes: list[dict[str, Any]] | None = None
) -> EnvJson:
    """The JSON of one env (``nodes``: its copies on a served cluster's nodes)."""
    try:
        ray: dict[str, Any] | None = environment.ray_runtime_env()
    except uv_envs.RayIncompatible:
        ray = None  # another Python minor than the cluster's: not for Ray
    runtime_env = environment.runtime_env()  # the paths below, as strings, made once
    return EnvJson(
        **key_json(environment.key),
        env_path=runtime_env["env_path"],
        python_path=runtime_env["python_path"],
        venv_path=runtime_env["venv_path"],
        pinned_python_path=runtime_env["pinned_python_path"],
        status=environment.status,
        spec=Spec(
            packages=list(environment.spec.packages),
            python=environment.spec.python,
            requirements_text=environment.spec.requirements_text,
        ),
        spec_hash=environment.spec_hash,
        python_version=environment.python_version,
        generation=environment.generation,
        created_at=environment.created_at,
        updated_at=environment.updated_at,
        error=environment.error,
        digest=environment.digest,
        runtime_env=runtime_env,
        ray_runtime_env=ray,
        nodes=None if nodes is None else [NodeJson(**node) for node in nodes],
    )


def status_json(
    report: uv_envs.StatusReport, nodes: list[dict[str, Any]] | None = None
) -> StatusJson:
    """The JSON of a status report (``nodes``: see :func:`env_json`)."""
    env = report.environment
    return StatusJson(
        **key_json(report.key),
        status=report.status,
        env_path=str(report.env_path),
        has_pyproject=report.has_pyproject,
        has_uv_lock=report.has_uv_lock,
        has_venv=report.has_venv,
        environment=env_json(env, nodes) if env is not None else None,
    )


def operation_json(result: uv_envs.OperationResult) -> OperationJson:
    """The JSON of an add, update, remove or sync that succeeded."""
    return OperationJson(
        operation=result.operation,
        status="SUCCESS",
        stdout=result.stdout,
        stderr=result.stderr,
        exit_code=result.exit_code,
        duration_ms=result.duration_ms,
        environment=env_json(result.environment),
        changed=result.changed,
    )


def cleanup_json(report: uv_envs.CleanupReport) -> CleanupJson:
    """The JSON of a cleanup report."""
    return CleanupJson(
        deleted=[str(k) for k in report.deleted],
        skipped_busy=[str(k) for k in report.skipped_busy],
        skipped_leased=[str(k) for k in report.skipped_leased],
        skipped_in_use=[
            InUseJson(
                key=str(u.key),
                processes=[ProcessJson(pid=p.pid, description=p.description) for p in u.processes],
            )
            for u in report.skipped_in_use
        ],
        store_entries_in_use=report.store_entries_in_use,
        pruned_generations=report.pruned_generations,
        pruned_store_entries=report.pruned_store_entries,
        pruned_locks=report.pruned_locks,
        bytes_in_use=report.bytes_in_use,
        checked_at=report.checked_at,
    )


def operations_json(page: uv_envs.OperationPage) -> OperationsJson:
    """The JSON of a page of audit records."""
    items = [
        RecordJson(
            **{
                **attrs.asdict(item, recurse=False),
                "metadata": dict(item.metadata),
            }
        )
        for item in page.items
    ]
    return OperationsJson(total=page.total, limit=page.limit, offset=page.offset, items=items)
