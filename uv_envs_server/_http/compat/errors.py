"""Errors of the original service's API: ``{"code", "message"}`` bodies, from one table.

Its client reads ``code``; the problem bodies of ``/v1`` would mean nothing to
it. :data:`COMPAT_ERRORS` maps the outcome both front doors already agree on
(:mod:`uv_envs_server._outcomes`) to that service's status and code, so a core
exception is classified once and answered in either dialect. Request
validation errors, a missing field included, are 400 ``INVALID_PACKAGES``
there, as they were. :class:`CompatRoute` answers the failures of the routes
it serves; the guards' refusals (401 token, 413 size) stay problem bodies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

import uv_envs
from uv_envs_server._http.compat.models import CompatCode, CompatError
from uv_envs_server._http.core_calls import Failed
from uv_envs_server._http.problems import MAX_OUTPUT, PROBLEM_STATUSES
from uv_envs_server._outcomes import Outcome, caller_message, outcome_of

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping, Sequence

    from fastapi import Request, Response


#: The OpenAPI tag of these routes.
COMPAT_TAG: Final = "original service API"

#: Outcome -> (status, code). The original service knew six codes; what it had no
#: word for is the nearest one a caller can act on: an env that cannot be changed
#: now (being created, failed, in use, its lock taken) is locked; uv stopping for
#: any other reason, a cancel or the server's own trouble is a failed execution.
COMPAT_ERRORS: Final[Mapping[Outcome, tuple[int, CompatCode]]] = {
    Outcome.BAD_INPUT: (400, CompatCode.INVALID_PACKAGES),
    Outcome.NOT_FOUND: (404, CompatCode.ENV_NOT_FOUND),
    Outcome.UNRESOLVABLE: (422, CompatCode.PACKAGE_RESOLUTION_FAILED),
    Outcome.BUSY: (423, CompatCode.ENV_LOCKED),
    Outcome.LEASED: (423, CompatCode.ENV_LOCKED),
    Outcome.NOT_READY: (423, CompatCode.ENV_LOCKED),
    # Not reached: POST /envs moves an env to another spec instead of refusing it.
    Outcome.EXISTS: (423, CompatCode.ENV_LOCKED),
    Outcome.UV_FAILED: (500, CompatCode.UV_EXECUTION_ERROR),
    Outcome.UV_TIMEOUT: (500, CompatCode.UV_EXECUTION_ERROR),
    Outcome.CANCELLED: (500, CompatCode.UV_EXECUTION_ERROR),
    Outcome.UNAVAILABLE: (500, CompatCode.DB_AUDIT_ERROR),
    Outcome.INTERNAL: (500, CompatCode.UV_EXECUTION_ERROR),
}

#: Failures the original service never had, answered by class before the outcome table:
#: the served Ray cluster's head away shares UNAVAILABLE with an audit database away,
#: but it is no audit error, and 503 tells its client (``raise_for_status``) to retry.
COMPAT_BY_CLASS: Final[tuple[tuple[type[BaseException], tuple[int, CompatCode]], ...]] = (
    (uv_envs.RayClusterUnavailable, (503, CompatCode.CLUSTER_UNAVAILABLE)),
)

_ANSWERS: Final = (*COMPAT_ERRORS.values(), *(answer for _, answer in COMPAT_BY_CLASS))

#: Statuses an operation of these routes answers with a :class:`CompatError` body.
COMPAT_STATUSES: Final = tuple(sorted({status for status, _ in _ANSWERS}))

#: Problem statuses the guards in front of every route answer (token, method, size).
GUARD_STATUSES: Final = (401, 405, 413)


def compat_response(status: int, code: CompatCode, message: str) -> JSONResponse:
    """An error body of the original service's API."""
    body = CompatError(code=code, message=message)
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def compat_error(exc: BaseException, request_id: str | None) -> JSONResponse:
    """The answer to ``exc``; the server's own trouble is logged here and not described.

    As on ``/v1``, a 500 for a server-side failure names only the class and the
    request id, and an unreachable audit database says whether the env changed.
    """
    status, code = next(
        (answer for kind, answer in COMPAT_BY_CLASS if isinstance(exc, kind)),
        COMPAT_ERRORS[outcome_of(exc)],
    )
    return compat_response(status, code, caller_message(exc, request_id, MAX_OUTPUT))


def compat_invalid(errors: Sequence[Any]) -> JSONResponse:
    """400 for a request FastAPI could not read: where and why, never the input itself."""
    where = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
        for error in list(errors)[:5]
        if isinstance(error, dict)
    )
    message = f"the request does not match the API: {where}" if where else "invalid request"
    return compat_response(400, CompatCode.INVALID_PACKAGES, message)


def _request_id(request: Request) -> str | None:
    value = request.scope.get("state", {}).get("request_id")
    return value if isinstance(value, str) else None


class CompatRoute(APIRoute):
    """A route whose failures are answered in the original service's ``{code, message}``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The endpoint's handler, with its request and core errors turned into answers."""
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return compat_invalid(exc.errors())
            except HTTPException as exc:
                if exc.status_code != 400:  # noqa: PLR2004 - the one status of a body unread
                    raise
                # A body FastAPI could not parse at all (broken multipart, say).
                detail = f"the request body could not be read: {exc.detail}"
                return compat_response(400, CompatCode.INVALID_PACKAGES, detail)
            except Failed as exc:
                return compat_error(exc.error, _request_id(request))
            except uv_envs.UvEnvsError as exc:
                return compat_error(exc, _request_id(request))

        return answer


def document_compat_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the error answers of the routes tagged :data:`COMPAT_TAG` (in place).

    Call after :func:`~uv_envs_server._http.problems.document_problems`: these
    operations keep the guards' problem answers and get :class:`CompatError`
    for the rest. An operation that only ever answers an error (its own
    status is one) gets no other.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    error_schema = CompatError.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(error_schema.pop("$defs", {}))
    components["CompatError"] = error_schema
    content = {"application/json": {"schema": {"$ref": "#/components/schemas/CompatError"}}}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if COMPAT_TAG not in operation.get("tags", ()):
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status in PROBLEM_STATUSES:
                if status not in GUARD_STATUSES:
                    responses.pop(str(status), None)
            if not any(status.startswith("2") for status in responses):
                continue  # it answers nothing but its own error (run)
            for status in COMPAT_STATUSES:
                codes = sorted({c for s, c in _ANSWERS if s == status})
                responses[str(status)] = {"description": " or ".join(codes), "content": content}
    return schema
