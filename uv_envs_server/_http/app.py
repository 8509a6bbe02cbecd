"""The HTTP/JSON application: the endpoints of :mod:`.routes` with their guards.

Beside them, :mod:`.compat.routes` serves the original service's API (``/envs``).

:func:`create_app` wires what surrounds the endpoints: the guard middleware
(request id and log, token, body size), the exception handlers that turn
errors into problem bodies (:mod:`uv_envs_server._http.problems`), and the
OpenAPI document with its bearer scheme and problem responses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.routing import Match

import uv_envs
from uv_envs_server._http.compat.errors import document_compat_errors
from uv_envs_server._http.compat.forms import document_compat_forms
from uv_envs_server._http.compat.routes import compat_router, refuse_legacy_shapes
from uv_envs_server._http.v1.routes import router

from . import metrics, sse
from .core_calls import Failed
from .middleware import DOCS_ASSETS, GuardMiddleware
from .problems import document_problems, problem, problem_for, validation_problem

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from uv_envs_server._options import ServeOptions
    from uv_envs_server._request_ids import CallCounts


#: The status whose answer names the allowed methods (RFC 9110 section 15.5.6).
METHOD_NOT_ALLOWED = 405


def allowed_methods(request: Request) -> str:
    """The ``Allow`` header of a 405: the methods of every endpoint at the request's path.

    Starlette names only the first route whose path matched; several routes share a path here.
    """
    methods: set[str] = set()
    for route in router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))


def _fastapi(**kwargs: Any) -> FastAPI:  # noqa: ANN401 - FastAPI's own
    """FastAPI whose ``/docs`` and ``/redoc`` load their scripts from this server, not a CDN.

    fastapi-offline (the ``[http]`` extra) vendors swagger-ui and ReDoc, so the
    docs render where the server has no internet; without it, FastAPI's own
    pages, which load them from a CDN.
    """
    try:
        from fastapi_offline import FastAPIOffline  # noqa: PLC0415 - optional
    except ImportError:
        return FastAPI(**kwargs)
    app: FastAPI = FastAPIOffline(static_url=DOCS_ASSETS, **kwargs)
    return app


def create_app(
    manager: uv_envs.EnvManager,
    executor: Executor,
    options: ServeOptions,
    *,
    grpc_calls: CallCounts | None = None,
) -> FastAPI:
    """The ASGI application serving ``manager`` (see :func:`create_http_server`).

    Core calls run on ``executor``; ``options`` gives the token and limits;
    ``/metrics`` also shows ``grpc_calls``, the RPCs of a gRPC server beside it.
    """
    app = _fastapi(
        title="uv-envs",
        version=uv_envs.__version__,
        summary="Isolated Python environments for workflow nodes, provisioned with uv.",
    )
    # What the endpoints' CoreCalls dependency reads.
    app.state.manager = manager
    app.state.executor = executor
    app.state.max_packages = options.max_packages
    app.state.min_cleanup_idle_hours = options.min_cleanup_idle_hours
    app.include_router(router, dependencies=[Depends(refuse_legacy_shapes)])
    app.include_router(compat_router)  # the original service's API, beside /v1
    app.include_router(sse.router)
    sse.install(app.state, options)
    metrics.install(app, manager, grpc_calls)

    def request_id(request: Request) -> str | None:
        value = request.scope.get("state", {}).get("request_id")
        return value if isinstance(value, str) else None

    async def on_failed(request: Request, exc: Exception) -> Response:
        error = exc.error if isinstance(exc, Failed) else exc
        return problem_for(error, request_id=request_id(request), instance=request.url.path)

    async def on_invalid(request: Request, exc: Exception) -> Response:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        if any(isinstance(e, dict) and e.get("type") == "json_invalid" for e in errors):
            # Not JSON at all: a 400, as a body that is not UTF-8 is; 422 is for JSON
            # that does not match the schema.
            detail = "the request body is not valid JSON"
            return problem(400, detail, request_id=request_id(request), instance=request.url.path)
        return validation_problem(errors, request_id=request_id(request), instance=request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        # Unknown paths (404) and methods (405): the same problem shape as the rest.
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = str(exc.detail) if isinstance(exc, HTTPException) else "error"
        headers = {"Allow": allowed_methods(request)} if status == METHOD_NOT_ALLOWED else None
        return problem(
            status,
            detail,
            request_id=request_id(request),
            instance=request.url.path,
            headers=headers,
        )

    app.add_exception_handler(Failed, on_failed)
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
            app.openapi_schema = document_compat_forms(
                document_compat_errors(document_problems(schema))
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
    app.add_middleware(
        GuardMiddleware,
        token=options.token,
        max_body_bytes=options.max_message_bytes,
        body_timeout=options.body_timeout,
    )
    return app
