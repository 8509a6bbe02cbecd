"""Errors over HTTP: every failure is an RFC 9457 ``application/problem+json`` body.

The status comes from the table shared with gRPC (:mod:`uv_envs_server._outcomes`).
``error_class`` names the core exception so :class:`uv_envs_server.HttpEnvClient`
can raise the class the in-process API would. A server-side failure
(``StorageError``, a bug) is a 500 that names only the class and the request
id; its message and traceback go to the server log, never to the caller. An
unreachable audit database is a 503 with ``Retry-After``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel
from starlette.responses import JSONResponse

import uv_envs
from uv_envs_server._outcomes import Outcome, caller_message, outcome_of, shorten

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"

#: uv's output in a problem body is cut to this many characters (head and tail kept).
MAX_OUTPUT = 64 * 1024

#: What a 503 (the audit database is away) suggests waiting before the retry.
RETRY_AFTER_SECONDS = 5


_TITLES: Final[Mapping[int, str]] = {
    400: "Bad request",
    401: "Unauthenticated",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid input",
    423: "Locked",
    429: "Too many event watchers",
    500: "Internal error",
    502: "uv failed",
    503: "Audit database unavailable",
    504: "uv timed out",
}

#: Statuses any operation may answer with a problem body (documented in the OpenAPI schema).
PROBLEM_STATUSES: Final = tuple(_TITLES)


class ProblemResponse(JSONResponse):
    """A JSON response with the problem media type."""

    media_type = PROBLEM_MEDIA_TYPE


class Problem(BaseModel):
    """An error, as RFC 9457 ``application/problem+json``.

    ``error_class`` names the uv-envs exception (``EnvironmentNotFound`` ...);
    uv failures add uv's ``stdout``, ``stderr`` and ``exit_code``. A 503 (the
    audit database is away) after the operation ran adds ``finished``: how it ended.
    """

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    error_class: str | None = None
    request_id: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    exit_code: int | None = None
    errors: list[dict[str, Any]] | None = None
    finished: str | None = None


def problem(
    status: int,
    detail: str,
    *,
    error_class: str | None = None,
    request_id: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,  # noqa: ANN401 - the problem's extension members
) -> ProblemResponse:
    """A problem response; ``type`` is a URN naming the error class (or the status)."""
    body = Problem(
        type=f"urn:uv-envs:problem:{error_class or status}",
        title=_TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        instance=instance,
        error_class=error_class,
        request_id=request_id,
        **extra,
    )
    return ProblemResponse(
        body.model_dump(exclude_none=True), status_code=status, headers=dict(headers or {})
    )


def problem_for(
    exc: BaseException, *, request_id: str | None, instance: str | None
) -> ProblemResponse:
    """The problem answering ``exc``; an unexpected one is logged here with its traceback."""
    outcome = outcome_of(exc)
    name = type(exc).__name__
    detail = caller_message(exc, request_id, MAX_OUTPUT)
    if isinstance(exc, uv_envs.AuditUnavailable):
        return problem(
            503,
            detail,
            error_class=name,
            request_id=request_id,
            instance=instance,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            finished=exc.finished,
        )
    if outcome is Outcome.INTERNAL:
        return problem(
            500,
            detail,
            error_class=name if isinstance(exc, uv_envs.UvEnvsError) else None,
            request_id=request_id,
            instance=instance,
        )
    if isinstance(exc, uv_envs.EnvironmentAlreadyExists) and isinstance(exc.key, uv_envs.EnvKey):
        detail = _conflict_detail(exc, exc.key, instance)
    elif isinstance(exc, uv_envs.UvEnvsError) and "force" in exc.fields:
        detail = re.sub(r"\bforce\b", "force=true", detail)  # the query parameter of DELETE
    extra: dict[str, Any] = {}
    if isinstance(exc, uv_envs.UvError):
        extra = {
            "stdout": shorten(exc.stdout, MAX_OUTPUT),
            "stderr": shorten(exc.stderr, MAX_OUTPUT),
            "exit_code": exc.exit_code,
        }
    return problem(
        outcome.http_status,
        detail,
        error_class=name,
        request_id=request_id,
        instance=instance,
        **extra,
    )


def _conflict_detail(
    exc: uv_envs.EnvironmentAlreadyExists, key: uv_envs.EnvKey, instance: str | None
) -> str:
    """A refused create in this API's words: what differs, and the route that moves the env."""
    if not (instance or "").startswith("/v1/"):
        return str(exc)
    path = f"/v1/envs/{key.workflow_id}/{key.node_id}/{key.version_id or '@'}"
    return f"{exc.headline}; PUT {path} with the new spec moves it to that spec, or DELETE it first"


#: What an id may hold, in words: the schema's pattern says the same to a machine.
_ID_WORDS: Final = (
    "1-128 letters, digits, '.', '_' and '-' (not '.' or '..'); a slash is never part of an id"
)


def _in_words(error: Mapping[str, Any]) -> str:
    """The schema's reason a field was refused; an id's pattern as a sentence, not a regex."""
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "string_pattern_mismatch" and loc and loc[-1] in _ID_FIELDS:
        return f"not an id: an id is {_ID_WORDS}"
    return str(error.get("msg", ""))


#: The core's class for a field the schema refused, so a client raises what the
#: in-process API would for the same input (a pattern in the schema, a check in the core).
_FIELD_ERRORS: Final[Mapping[str, str]] = {
    "workflow_id": uv_envs.InvalidIdentifier.__name__,
    "node_id": uv_envs.InvalidIdentifier.__name__,
    "version_id": uv_envs.InvalidIdentifier.__name__,
    "python_version": uv_envs.InvalidPythonVersion.__name__,
    "packages": uv_envs.InvalidRequirement.__name__,
}


_ID_FIELDS: Final = frozenset({"workflow_id", "node_id", "version_id"})


def _error_class(errors: Sequence[Any]) -> str:
    """The core class naming the first refused field; ``InvalidInput`` for any other."""
    for error in errors:
        for part in error.get("loc", ()) if isinstance(error, dict) else ():
            if isinstance(part, str) and part in _FIELD_ERRORS:
                return _FIELD_ERRORS[part]
    return uv_envs.InvalidInput.__name__


def validation_problem(
    errors: Sequence[Any], *, request_id: str | None, instance: str | None
) -> ProblemResponse:
    """A 422 for a body or query FastAPI could not parse; lists where and why, not the input."""
    listed = [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": _in_words(error)}
        for error in errors
        if isinstance(error, dict)
    ]
    where = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in listed[:5])
    return problem(
        422,
        f"the request does not match the schema: {where}" if where else "invalid request",
        error_class=_error_class(errors),
        request_id=request_id,
        instance=instance,
        errors=listed,
    )


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Declare the problem responses of every operation in an OpenAPI schema (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status in PROBLEM_STATUSES:
                responses[str(status)] = {"description": _TITLES[status], "content": content}
    return schema
