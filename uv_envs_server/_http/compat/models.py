"""The JSON of the original service's API (``/envs``), as pydantic models, and their builders.

The shapes are that service's, field for field, so its client reads them
unchanged: ``version_id`` is null when there is none (``""`` in a delete's
answer), times are ISO 8601 strings in UTC, statuses are the fixed words its
client expects. The ``compat_*`` functions build them from the core's models.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import uv_envs


class CompatCode(enum.StrEnum):
    """The ``code`` of an error body; which failure answers which is :mod:`.compat_errors`'."""

    INVALID_PACKAGES = "INVALID_PACKAGES"
    ENV_NOT_FOUND = "ENV_NOT_FOUND"
    PACKAGE_RESOLUTION_FAILED = "PACKAGE_RESOLUTION_FAILED"
    ENV_LOCKED = "ENV_LOCKED"
    UV_EXECUTION_ERROR = "UV_EXECUTION_ERROR"
    DB_AUDIT_ERROR = "DB_AUDIT_ERROR"
    CLUSTER_UNAVAILABLE = "CLUSTER_UNAVAILABLE"
    NOT_IMPLEMENTED = "NOT_IMPLEMENTED"


class CompatError(BaseModel):
    """Every failure of these routes: a code from the fixed table and a message."""

    code: CompatCode
    message: str


class CompatCleanupBody(BaseModel):
    """``POST /envs/cleanup``: delete envs idle at least this many hours (1 or more)."""

    model_config = ConfigDict(extra="forbid")

    idle_hours: float = Field(ge=1, le=1_000_000, allow_inf_nan=False)


class EnvTimes(BaseModel):
    """A status's ``metadata``: the env's id (the original client's folder name) and times."""

    env_id: str
    created_at: str
    last_used_at: str = Field(description="the last operation that changed the env")


class CompatStatus(BaseModel):
    """``GET /envs/{w}/{n}``: an env that can be used; anything else is 404 ENV_NOT_FOUND."""

    workflow_id: str
    node_id: str
    version_id: str | None
    status: Literal["ACTIVE"]
    env_path: str
    has_pyproject: bool
    has_uv_lock: bool
    has_venv: bool
    metadata: EnvTimes


class CompatCreated(BaseModel):
    """``POST /envs``: the env, made or already there with this spec."""

    workflow_id: str
    node_id: str
    version_id: str | None
    env_path: str
    python_version: str
    status: Literal["created"]
    pyproject_toml: str


class CompatDeleted(BaseModel):
    """``DELETE /envs/{w}/{n}``: also for an env that was not there."""

    workflow_id: str
    node_id: str
    version_id: str = Field(description='"" when the env has none')
    status: Literal["deleted"]
    # Only in a deferred answer: the original API's body is exactly the four fields above.
    deferred: bool | None = Field(
        default=None, description="true: in use, withdrawn now, removed once its users exit"
    )
    held_by: list[int] | None = Field(default=None, description="pids still using it")


class CompatChanged(BaseModel):
    """``POST`` (added) and ``PUT`` (updated) ``/envs/{w}/{n}/deps``."""

    workflow_id: str
    node_id: str
    version_id: str | None
    status: Literal["added", "updated"]


class CompatInstalled(BaseModel):
    """``DELETE /envs/{w}/{n}/deps`` (removed) and ``POST .../sync`` (synced)."""

    workflow_id: str
    node_id: str
    version_id: str | None
    status: Literal["removed", "synced"]
    packages_installed: list[str] = Field(description="the requirements the env now declares")


class CompatDeps(BaseModel):
    """``GET /envs/{w}/{n}/deps``: what pyproject.toml declares and what uv.lock pins."""

    workflow_id: str
    node_id: str
    version_id: str | None
    dependencies: list[str]
    locked_versions: dict[str, str]


class CompatExport(BaseModel):
    """``GET /envs/{w}/{n}/export``: the project's two files."""

    workflow_id: str
    node_id: str
    version_id: str | None
    pyproject_toml: str
    uv_lock: str


class CompatCleanup(BaseModel):
    """What ``POST /envs/cleanup`` deleted (``workflow/node/version`` each) and when it looked."""

    deleted: list[str]
    checked_at: str


class CompatRecord(BaseModel):
    """One audit record; ``created_at`` is when the operation started."""

    id: int
    workflow_id: str
    node_id: str
    operation: str
    status: uv_envs.OperationStatus
    stdout: str
    stderr: str
    exit_code: int | None
    duration_ms: int | None
    metadata: dict[str, Any]
    created_at: str


class CompatHistory(BaseModel):
    """``GET /envs-history/{w}``: a page of a workflow's audit trail, newest first."""

    total: int
    items: list[CompatRecord]


class CompatHistoryDeleted(BaseModel):
    """``DELETE /envs-history/{w}``: ``node_id`` when one node's records went, else the nodes."""

    workflow_id: str
    deleted_count: int
    node_id: str | None = None
    deleted_node_ids: list[str] | None = None


def iso(timestamp: float) -> str:
    """Unix seconds as ISO 8601 in UTC."""
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()


def _ident(key: uv_envs.EnvKey) -> dict[str, Any]:
    return {
        "workflow_id": key.workflow_id,
        "node_id": key.node_id,
        "version_id": key.version_id or None,
    }


def compat_status(report: uv_envs.StatusReport, environment: uv_envs.Environment) -> CompatStatus:
    """The status of an env that can be used (READY)."""
    key = report.key
    parts = [key.workflow_id, key.node_id, *([key.version_id] if key.version_id else [])]
    return CompatStatus(
        **_ident(key),
        status="ACTIVE",
        env_path=str(report.env_path),
        has_pyproject=report.has_pyproject,
        has_uv_lock=report.has_uv_lock,
        has_venv=report.has_venv,
        metadata=EnvTimes(
            env_id="_".join(parts),
            created_at=iso(environment.created_at),
            last_used_at=iso(environment.updated_at),
        ),
    )


def compat_created(env: uv_envs.Environment, pyproject_toml: str) -> CompatCreated:
    """The answer to a create, from what the one provision call returned."""
    return CompatCreated(
        **_ident(env.key),
        env_path=str(env.env_path),
        python_version=env.python_version,
        status="created",
        pyproject_toml=pyproject_toml,
    )


def compat_deleted(result: uv_envs.DeleteResult) -> CompatDeleted:
    """The answer to a delete, whether or not there was an env (and if it waits for users)."""
    key, deferred = result.key, result.status is uv_envs.DeleteStatus.DEFERRED
    return CompatDeleted(
        workflow_id=key.workflow_id,
        node_id=key.node_id,
        version_id=key.version_id,
        status="deleted",
        deferred=True if deferred else None,
        held_by=list(result.held_by) if deferred else None,
    )


def compat_changed(
    result: uv_envs.OperationResult, status: Literal["added", "updated"]
) -> CompatChanged:
    """The answer to an add or an update."""
    return CompatChanged(**_ident(result.environment.key), status=status)


def compat_installed(
    result: uv_envs.OperationResult, status: Literal["removed", "synced"]
) -> CompatInstalled:
    """The answer to a remove or a sync: what the env declares now."""
    env = result.environment
    return CompatInstalled(
        **_ident(env.key), status=status, packages_installed=list(env.spec.packages)
    )


def compat_deps(key: uv_envs.EnvKey, deps: uv_envs.Dependencies) -> CompatDeps:
    """The declared requirements and the locked versions."""
    return CompatDeps(
        **_ident(key), dependencies=list(deps.declared), locked_versions=dict(deps.locked)
    )


def compat_export(key: uv_envs.EnvKey, files: uv_envs.Export) -> CompatExport:
    """pyproject.toml and uv.lock."""
    return CompatExport(**_ident(key), pyproject_toml=files.pyproject_toml, uv_lock=files.uv_lock)


def compat_cleanup(report: uv_envs.CleanupReport) -> CompatCleanup:
    """What a cleanup deleted."""
    return CompatCleanup(
        deleted=[str(k) for k in report.deleted], checked_at=iso(report.checked_at)
    )


def compat_history(page: uv_envs.OperationPage) -> CompatHistory:
    """A page of audit records in the original service's shape."""
    items = [
        CompatRecord(
            id=item.id,
            workflow_id=item.workflow_id,
            node_id=item.node_id,
            operation=item.operation,
            status=item.status,
            stdout=item.stdout,
            stderr=item.stderr,
            exit_code=item.exit_code,
            duration_ms=item.duration_ms,
            metadata=dict(item.metadata),
            created_at=iso(item.started_at),
        )
        for item in page.items
    ]
    return CompatHistory(total=page.total, items=items)


def compat_history_deleted(deleted: uv_envs.DeletedOperations) -> CompatHistoryDeleted:
    """What deleting audit records removed: one node's, or a workflow's with its nodes listed."""
    if deleted.node_id:
        return CompatHistoryDeleted(
            workflow_id=deleted.workflow_id,
            deleted_count=deleted.deleted_count,
            node_id=deleted.node_id,
        )
    return CompatHistoryDeleted(
        workflow_id=deleted.workflow_id,
        deleted_count=deleted.deleted_count,
        deleted_node_ids=list(deleted.deleted_node_ids),
    )
