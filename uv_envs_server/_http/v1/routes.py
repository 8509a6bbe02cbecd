"""The HTTP/JSON API's endpoints: request -> one core call -> JSON, and nothing more.

Each core call runs on the server's pool through :class:`~.core_calls.CoreCalls`
(the ``core`` parameter). The empty version id is spelt ``@`` in paths.
"""

from __future__ import annotations

from typing import Annotated, TypedDict

from fastapi import Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

import uv_envs
from uv_envs_server._http import patterns as p
from uv_envs_server._http.core_calls import Core, CoreCalls, Failed, Rendered
from uv_envs_server._http.page import render_status_page
from uv_envs_server._http.routers import SegmentRouter
from uv_envs_server._http.v1 import bodies as b
from uv_envs_server._http.v1 import maintenance as mt
from uv_envs_server._http.v1 import models as m
from uv_envs_server._limits import DEFAULT_OPERATIONS_LIMIT
from uv_envs_server._nodes import cluster_nodes, node_presence, relay_counts

ENV = "/v1/envs/{workflow_id}/{node_id}/{version_id}"

router = SegmentRouter()

# The path ids, with the pattern the core checks, so the schema says what is refused.
WorkflowId = Annotated[str, Path(pattern=p.ID_PATTERN)]
NodeId = Annotated[str, Path(pattern=p.ID_PATTERN)]
VersionId = Annotated[str, Path(pattern=p.PATH_VERSION_PATTERN, description="@: the empty id")]
# The same ids as filters; left out means "any".
WorkflowFilter = Annotated[str | None, Query(pattern=p.ID_PATTERN)]
NodeFilter = Annotated[str | None, Query(pattern=p.ID_PATTERN)]


def _env_json(core: CoreCalls, environment: uv_envs.Environment) -> m.EnvJson:
    """An env's JSON, with its copies on the nodes when the server serves a Ray cluster."""
    return m.env_json(environment, node_presence(core.manager, environment.key))


async def _path_key(
    workflow_id: WorkflowId, node_id: NodeId, version_id: VersionId
) -> uv_envs.EnvKey:
    """The env a path names; ``@`` is the empty version id (``async``: no thread-pool hop)."""
    return uv_envs.EnvKey(workflow_id, node_id, "" if version_id == b.EMPTY_VERSION else version_id)


class _Spec(TypedDict):
    packages: tuple[str, ...]
    requirements_text: str | None
    python: str | None


def _spec(core: CoreCalls, body: b.EnsureBody) -> _Spec:
    # A body's spec as the core's keywords; call it in the core call (it checks the limit).
    packages = core.packages(body.packages)
    return {
        "packages": packages,
        "requirements_text": body.requirements_text,
        "python": body.python_version or None,
    }


#: The env named by the path's three ids, as an endpoint parameter.
PathKey = Annotated[uv_envs.EnvKey, Depends(_path_key)]


@router.get("/v1/health", tags=["maintenance"], response_model_exclude_none=True)
async def health(core: Core) -> mt.HealthJson:
    """Whether the server answers, and the served Ray cluster's head (no token needed)."""
    cluster = core.manager.cluster
    if cluster is None:
        return mt.HealthJson(status="SERVING")
    reason = cluster.unavailable()
    return mt.HealthJson(
        status="SERVING",
        cluster="SERVING" if reason is None else "NOT_SERVING",
        cluster_error=reason,
    )


@router.get("/v1/cluster", tags=["maintenance"])
async def cluster(core: Core) -> mt.ClusterJson:
    """The served Ray cluster's alive nodes, and why any of them is not served."""
    nodes = cluster_nodes(core.manager)
    relay = relay_counts(core.manager)
    return mt.ClusterJson(
        served=nodes is not None,
        nodes=[mt.ClusterNodeJson(**n) for n in nodes or []],
        relay=None if relay is None else mt.RelayJson(**relay),
    )


@router.post(
    "/v1/envs",
    status_code=201,
    tags=["envs"],
    responses={200: {"model": m.EnvJson, "description": "An identical env exists already"}},
)
async def create(body: b.CreateBody, response: Response, core: Core) -> m.EnvJson:
    """Create an env: 201 when made, 200 when an identical one exists, 409 for another spec."""
    key = uv_envs.EnvKey(body.workflow_id, body.node_id, body.version_id)
    provisioned = await core(lambda: core.manager.provision(key, **_spec(core, body)))
    if not provisioned.created:
        response.status_code = 200
    return _env_json(core, provisioned.environment)


@router.put(ENV, tags=["envs"])
async def ensure(key: PathKey, body: b.EnsureBody, core: Core) -> m.EnvJson:
    """Make the env match the spec (create it, or move it to a new generation); retry-safe."""
    env = await core(lambda: core.manager.ensure(key, **_spec(core, body)))
    return _env_json(core, env)


@router.get("/v1/envs", tags=["envs"], response_model=m.EnvList)
async def list_envs(
    core: Core, workflow_id: WorkflowFilter = None, node_id: NodeFilter = None
) -> Rendered:
    """Every env, optionally of one workflow (and node)."""

    def call() -> bytes:
        envs = core.manager.list_environments(workflow_id, node_id)
        return Rendered.of(m.EnvList(environments=[_env_json(core, e) for e in envs]))

    return Rendered(await core(call))


@router.get(ENV, tags=["envs"], response_model=m.StatusJson)
async def status(
    workflow_id: WorkflowId, node_id: NodeId, version_id: VersionId, request: Request
) -> Response:
    """The env's status, which of its files exist, and the env; 404 when there is none."""
    # PathKey's and Core's parameters taken here, and the answer serialised once (not
    # validated again against its model): the read clients poll, and FastAPI solves each
    # sub-dependency apart, with its own parameter passes.
    key, core = await _path_key(workflow_id, node_id, version_id), CoreCalls(request)
    report = await core.read(lambda: core.manager.status(key))
    if report.environment is None:
        raise Failed(uv_envs.EnvironmentNotFound(f"no environment {key}"))
    body = m.status_json(report, node_presence(core.manager, key)).model_dump_json()
    return Response(body, media_type="application/json")


@router.delete(ENV, tags=["envs"])
async def delete(
    key: PathKey,
    core: Core,
    force: bool = False,  # noqa: FBT001, FBT002 - a query parameter
) -> m.DeletedJson:
    """Delete the env; NOT_FOUND (still 200) when there was none; DEFERRED while in use."""
    result = await core(lambda: core.manager.delete(key, force=force))
    return m.DeletedJson(
        **m.key_json(key),
        status=result.status,
        held_by=list(result.held_by),
        leases=result.leases,
        held_on=list(result.held_on),
    )


@router.get(f"{ENV}/deps", tags=["deps"])
async def deps(key: PathKey, core: Core) -> m.DepsJson:
    """The declared requirements and the versions uv.lock pins."""
    found = await core(lambda: core.manager.dependencies(key))
    return m.DepsJson(declared=list(found.declared), locked=dict(found.locked))


@router.post(f"{ENV}/deps", tags=["deps"])
async def add(key: PathKey, body: b.AddBody, core: Core) -> m.OperationJson:
    """Add packages (uv add) in a new generation; uv's failure is a problem with its stderr."""
    result = await core(
        lambda: core.manager.add(
            key, core.packages(body.packages), requirements_text=body.requirements_text
        ),
    )
    return m.operation_json(result)


@router.patch(f"{ENV}/deps", tags=["deps"])
async def update(key: PathKey, body: b.PackagesBody, core: Core) -> m.OperationJson:
    """Upgrade the named packages, or every one when none is named."""
    result = await core(lambda: core.manager.update(key, core.packages(body.packages)))
    return m.operation_json(result)


@router.delete(f"{ENV}/deps", tags=["deps"])
async def remove(key: PathKey, body: b.RemoveBody, core: Core) -> m.OperationJson:
    """Remove the named packages."""
    result = await core(lambda: core.manager.remove(key, core.packages(body.packages)))
    return m.operation_json(result)


@router.post(f"{ENV}/sync", tags=["deps"])
async def sync(key: PathKey, core: Core) -> m.OperationJson:
    """Make the venv match uv.lock again (repairs a DAMAGED env)."""
    return m.operation_json(await core(lambda: core.manager.sync(key)))


@router.post(f"{ENV}/verify", tags=["deps"])
async def verify(key: PathKey, core: Core) -> m.VerifyJson:
    """Check the venv against its lock, file by file; a failed check marks it DAMAGED."""
    report = await core(lambda: core.manager.verify(key))
    return m.VerifyJson(
        ok=report.ok,
        problems=list(report.problems),
        checked_files=report.checked_files,
        digest=report.digest,
    )


@router.get(f"{ENV}/export", tags=["deps"])
async def export(
    key: PathKey,
    core: Core,
    fmt: Annotated[b.ExportFormat, Query(alias="format")] = b.ExportFormat.PROJECT,
) -> m.ExportJson:
    """The project files (pyproject.toml, uv.lock), or the lock as requirements.txt/pylock.

    ``cyclonedx``: a CycloneDX 1.5 JSON SBOM (``sbom.cdx.json``) whose metadata
    properties carry the env digest (``uv-envs:env-digest``).
    """

    def call() -> dict[str, str]:
        exported = core.manager.export(key, fmt)
        if isinstance(exported, uv_envs.Export):
            return {"pyproject.toml": exported.pyproject_toml, "uv.lock": exported.uv_lock}
        return {fmt.file_name: exported}

    return m.ExportJson(format=fmt, files=await core(call))


@router.post("/v1/cleanup", tags=["maintenance"])
async def cleanup(body: b.CleanupBody, core: Core) -> m.CleanupJson:
    """Delete envs idle for ``idle_hours``, then the least recently used over ``max_bytes``.

    Envs used within the server's ``--min-cleanup-idle-hours`` (1 by default)
    are kept by both passes, as over gRPC.
    """
    idle = None if body.idle_hours is None else body.idle_hours * 3600.0
    floor = core.min_cleanup_idle_hours * 3600.0
    report = await core(
        lambda: core.manager.cleanup(idle, max_bytes=body.max_bytes, min_idle_seconds=floor)
    )
    return m.cleanup_json(report)


@router.get("/v1/operations", tags=["maintenance"], response_model=m.OperationsJson)
async def operations(
    core: Core,
    workflow_id: str | None = None,
    node_id: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_OPERATIONS_LIMIT,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Rendered:
    """The audit trail, newest first, filtered and paged like ``uv-envs ops``."""

    def call() -> bytes:
        page = core.manager.operations(workflow_id, node_id, status, limit, offset)
        return Rendered.of(m.operations_json(page))

    return Rendered(await core(call))


@router.delete("/v1/operations", tags=["maintenance"])
async def delete_operations(
    core: Core,
    workflow_id: Annotated[str, Query(pattern=p.ID_PATTERN)],
    node_id: NodeFilter = None,
) -> m.DeletedOperationsJson:
    """Delete the audit records of a workflow, or of one of its nodes."""
    deleted = await core(lambda: core.manager.delete_operations(workflow_id, node_id))
    return m.DeletedOperationsJson(
        workflow_id=deleted.workflow_id,
        node_id=deleted.node_id or "",
        deleted_count=deleted.deleted_count,
        deleted_node_ids=list(deleted.deleted_node_ids),
    )


@router.get("/", response_class=HTMLResponse, tags=["page"])
async def page(core: Core) -> HTMLResponse:
    """The status page: every env, its operations, uv's stderr for failures (read-only)."""
    return HTMLResponse(await core(lambda: render_status_page(core.manager)))
