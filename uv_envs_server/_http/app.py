"""The HTTP/JSON API: request -> core call -> JSON, and nothing more.

Every core call runs on the server's thread pool, so a long create holds one
thread while the event loop goes on answering other requests. While it runs
the handler polls whether the client is still there; when it has gone, the
call's cancel event is set and the core stops uv and rolls back, as the gRPC
servicer does when a call is cancelled. Errors become problem bodies in
:mod:`uv_envs_server._http.problems`. The empty version id is spelt ``@``
in paths.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

import uv_envs
from uv_envs_server._limits import DEFAULT_OPERATIONS_LIMIT, limit_packages

from . import models as m
from .middleware import GuardMiddleware
from .page import render_status_page
from .problems import document_problems, problem, problem_for, validation_problem

if TYPE_CHECKING:
    from collections.abc import Callable
    from concurrent.futures import Executor

_R = TypeVar("_R")

#: Seconds between two checks whether the client of a running call is still there.
DISCONNECT_POLL = 0.1

ENV = "/v1/envs/{workflow_id}/{node_id}/{version_id}"


class _Failed(Exception):
    """Carries a core call's exception to the handler that turns it into a problem."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(type(error).__name__)


def _key(workflow_id: str, node_id: str, version_id: str) -> uv_envs.EnvKey:
    return uv_envs.EnvKey(workflow_id, node_id, "" if version_id == m.EMPTY_VERSION else version_id)


class _Core:
    """Runs core calls on the pool, cancelling them when the client goes away."""

    def __init__(self, manager: uv_envs.EnvManager, executor: Executor, max_packages: int) -> None:
        self.manager = manager
        self.executor = executor
        self.max_packages = max_packages

    def packages(self, packages: list[str]) -> tuple[str, ...]:
        return limit_packages(packages, self.max_packages)

    async def __call__(self, request: Request, call: Callable[[], _R]) -> _R:
        cancel = threading.Event()

        def work() -> _R:
            with uv_envs.EnvManager.cancellable(cancel):
                return call()

        # The copied context carries the request id into the worker thread.
        context = contextvars.copy_context()
        future = asyncio.get_running_loop().run_in_executor(self.executor, context.run, work)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=DISCONNECT_POLL)
                if not future.done() and await request.is_disconnected():
                    cancel.set()  # uv is stopped, the operation rolled back
                    await asyncio.wait({future})
            return future.result()
        except asyncio.CancelledError:
            cancel.set()  # the server is stopping this request
            raise
        except Exception as exc:
            raise _Failed(exc) from exc


def create_app(
    manager: uv_envs.EnvManager,
    executor: Executor,
    *,
    token: str | None = None,
    max_body_bytes: int,
    max_packages: int,
) -> FastAPI:
    """The ASGI application serving ``manager`` (see :func:`create_http_server`)."""
    app = FastAPI(
        title="uv-envs",
        version=uv_envs.__version__,
        summary="Isolated Python environments for workflow nodes, provisioned with uv.",
    )
    core = _Core(manager, executor, max_packages)
    _routes(app, core)

    def request_id(request: Request) -> str | None:
        value = request.scope.get("state", {}).get("request_id")
        return value if isinstance(value, str) else None

    async def on_failed(request: Request, exc: Exception) -> Response:
        error = exc.error if isinstance(exc, _Failed) else exc
        return problem_for(error, request_id=request_id(request), instance=request.url.path)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        return validation_problem(errors, request_id=request_id(request), instance=request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        # Unknown paths (404) and methods (405): the same problem shape as the rest.
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = str(exc.detail) if isinstance(exc, HTTPException) else "error"
        return problem(status, detail, request_id=request_id(request), instance=request.url.path)

    app.add_exception_handler(_Failed, on_failed)
    app.add_exception_handler(uv_envs.UvEnvsError, on_failed)
    app.add_exception_handler(RequestValidationError, on_invalid)
    app.add_exception_handler(HTTPException, on_http)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"bearer": []}, {}]
            app.openapi_schema = document_problems(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    app.add_middleware(GuardMiddleware, token=token, max_body_bytes=max_body_bytes)
    return app


def _routes(app: FastAPI, core: _Core) -> None:  # noqa: C901, PLR0915 - one route per operation
    manager = core.manager

    @app.get("/v1/health", tags=["maintenance"])
    async def health() -> m.HealthJson:
        """Whether the server answers (no token needed)."""
        return m.HealthJson(status="SERVING")

    @app.post("/v1/envs", status_code=201, tags=["envs"])
    async def create(body: m.CreateBody, request: Request, response: Response) -> m.EnvJson:
        """Create an env: 201 when made, 200 when an identical one exists, 409 for another spec."""
        key = uv_envs.EnvKey(body.workflow_id, body.node_id, body.version_id)

        def call() -> tuple[uv_envs.Environment, bool]:
            before = manager.status(key).environment
            env = manager.create(
                key,
                packages=core.packages(body.packages),
                requirements_text=body.requirements_text,
                python=body.python_version or None,
            )
            return env, before is not None and before.created_at == env.created_at

        env, existed = await core(request, call)
        if existed:
            response.status_code = 200
        return m.env_json(env)

    @app.put(ENV, tags=["envs"])
    async def ensure(
        workflow_id: str,
        node_id: str,
        version_id: str,
        body: m.EnsureBody,
        request: Request,
    ) -> m.EnvJson:
        """Make the env match the spec (create it, or move it to a new generation); retry-safe."""
        key = _key(workflow_id, node_id, version_id)
        env = await core(
            request,
            lambda: manager.ensure(
                key,
                packages=core.packages(body.packages),
                requirements_text=body.requirements_text,
                python=body.python_version or None,
            ),
        )
        return m.env_json(env)

    @app.get("/v1/envs", tags=["envs"])
    async def list_envs(
        request: Request, workflow_id: str | None = None, node_id: str | None = None
    ) -> m.EnvList:
        """Every env, optionally of one workflow (and node)."""
        envs = await core(request, lambda: manager.list_environments(workflow_id, node_id))
        return m.EnvList(environments=[m.env_json(e) for e in envs])

    @app.get(ENV, tags=["envs"])
    async def status(
        workflow_id: str, node_id: str, version_id: str, request: Request
    ) -> m.StatusJson:
        """The env's status, which of its files exist, and the env; 404 when there is none."""
        key = _key(workflow_id, node_id, version_id)
        report = await core(request, lambda: manager.status(key))
        if report.environment is None:
            raise _Failed(uv_envs.EnvironmentNotFound(f"no environment {key}"))
        return m.status_json(report)

    @app.delete(ENV, tags=["envs"])
    async def delete(
        workflow_id: str,
        node_id: str,
        version_id: str,
        request: Request,
        force: bool = False,  # noqa: FBT001, FBT002 - a query parameter
    ) -> m.DeletedJson:
        """Delete the env; NOT_FOUND (still 200) when there was none. A leased env is 423."""
        key = _key(workflow_id, node_id, version_id)
        result = await core(request, lambda: manager.delete(key, force=force))
        return m.DeletedJson(**m.key_json(key), status=result.status)

    @app.get(f"{ENV}/deps", tags=["deps"])
    async def deps(workflow_id: str, node_id: str, version_id: str, request: Request) -> m.DepsJson:
        """The declared requirements and the versions uv.lock pins."""
        key = _key(workflow_id, node_id, version_id)
        found = await core(request, lambda: manager.dependencies(key))
        return m.DepsJson(declared=list(found.declared), locked=dict(found.locked))

    @app.post(f"{ENV}/deps", tags=["deps"])
    async def add(
        workflow_id: str, node_id: str, version_id: str, body: m.AddBody, request: Request
    ) -> m.OperationJson:
        """Add packages (uv add) in a new generation; uv's failure is a problem with its stderr."""
        key = _key(workflow_id, node_id, version_id)
        result = await core(
            request,
            lambda: manager.add(
                key, core.packages(body.packages), requirements_text=body.requirements_text
            ),
        )
        return m.operation_json(result)

    @app.patch(f"{ENV}/deps", tags=["deps"])
    async def update(
        workflow_id: str, node_id: str, version_id: str, body: m.PackagesBody, request: Request
    ) -> m.OperationJson:
        """Upgrade the named packages, or every one when none is named."""
        key = _key(workflow_id, node_id, version_id)
        result = await core(request, lambda: manager.update(key, core.packages(body.packages)))
        return m.operation_json(result)

    @app.delete(f"{ENV}/deps", tags=["deps"])
    async def remove(
        workflow_id: str, node_id: str, version_id: str, body: m.PackagesBody, request: Request
    ) -> m.OperationJson:
        """Remove the named packages."""
        key = _key(workflow_id, node_id, version_id)
        result = await core(request, lambda: manager.remove(key, core.packages(body.packages)))
        return m.operation_json(result)

    @app.post(f"{ENV}/sync", tags=["deps"])
    async def sync(
        workflow_id: str, node_id: str, version_id: str, request: Request
    ) -> m.OperationJson:
        """Make the venv match uv.lock again (repairs a DAMAGED env)."""
        key = _key(workflow_id, node_id, version_id)
        return m.operation_json(await core(request, lambda: manager.sync(key)))

    @app.post(f"{ENV}/verify", tags=["deps"])
    async def verify(
        workflow_id: str, node_id: str, version_id: str, request: Request
    ) -> m.VerifyJson:
        """Check the venv against its lock, file by file; a failed check marks it DAMAGED."""
        key = _key(workflow_id, node_id, version_id)
        report = await core(request, lambda: manager.verify(key))
        return m.VerifyJson(
            ok=report.ok, problems=list(report.problems), checked_files=report.checked_files
        )

    @app.get(f"{ENV}/export", tags=["deps"])
    async def export(
        workflow_id: str,
        node_id: str,
        version_id: str,
        request: Request,
        fmt: Annotated[m.ExportFormat, Query(alias="format")] = "project",
    ) -> m.ExportJson:
        """The project files (pyproject.toml, uv.lock), or the lock as requirements.txt/pylock."""
        key = _key(workflow_id, node_id, version_id)

        def call() -> dict[str, str]:
            if fmt == "project":
                files = manager.export(key)
                return {"pyproject.toml": files.pyproject_toml, "uv.lock": files.uv_lock}
            return {fmt: manager.export_as(key, fmt)}

        return m.ExportJson(format=fmt, files=await core(request, call))

    @app.post("/v1/cleanup", tags=["maintenance"])
    async def cleanup(body: m.CleanupBody, request: Request) -> m.CleanupJson:
        """Delete envs idle for ``idle_hours``, then the least recently used over ``max_bytes``."""
        idle = None if body.idle_hours is None else body.idle_hours * 3600.0
        report = await core(request, lambda: manager.cleanup(idle, max_bytes=body.max_bytes))
        return m.cleanup_json(report)

    @app.get("/v1/operations", tags=["maintenance"])
    async def operations(  # noqa: PLR0917 - the CLI's ops filters, as query parameters
        request: Request,
        workflow_id: str | None = None,
        node_id: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_OPERATIONS_LIMIT,
        offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> m.OperationsJson:
        """The audit trail, newest first, filtered and paged like ``uv-envs ops``."""
        page = await core(
            request, lambda: manager.operations(workflow_id, node_id, status, limit, offset)
        )
        return m.operations_json(page)

    @app.delete("/v1/operations", tags=["maintenance"])
    async def delete_operations(
        request: Request, workflow_id: str, node_id: str | None = None
    ) -> m.DeletedOperationsJson:
        """Delete the audit records of a workflow, or of one of its nodes."""
        deleted = await core(request, lambda: manager.delete_operations(workflow_id, node_id))
        return m.DeletedOperationsJson(
            workflow_id=deleted.workflow_id,
            node_id=deleted.node_id or "",
            deleted_count=deleted.deleted_count,
            deleted_node_ids=list(deleted.deleted_node_ids),
        )

    @app.get("/", response_class=HTMLResponse, tags=["page"])
    async def page(request: Request) -> HTMLResponse:
        """The status page: every env, its operations, uv's stderr for failures (read-only)."""
        return HTMLResponse(await core(request, lambda: render_status_page(manager)))
