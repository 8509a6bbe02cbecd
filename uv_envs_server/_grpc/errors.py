"""Error translation at the wire: core exception <-> gRPC status code.

The server answers every failure with a status code and a short message,
never a traceback. It also names the core exception class in the trailing
metadata key :data:`ERROR_CLASS_KEY`, so the Python client can raise the same
class the in-process provider would (``except EnvironmentNotFound`` works
against both). Other clients just see the code and the message.

The mapping from exception class to status code is the table in
:mod:`uv_envs_server._outcomes`, shared with the HTTP API. A uv failure in
AddDeps, UpdateDeps, RemoveDeps and SyncEnv is an answer (status FAILED), not
an error.

An INTERNAL answer names only the exception class and the request id; the
message itself, which may quote server paths or files, goes to the server log.
So does the message of an UNAVAILABLE answer (the audit database is away); the
caller is told whether the operation changed the env.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Never, cast

import grpc

import uv_envs
from uv_envs_server._outcomes import MAX_DETAILS, caller_message, core_error, outcome_of
from uv_envs_server._request_ids import current_request_id

if TYPE_CHECKING:
    from collections.abc import Iterable

ERROR_CLASS_KEY = "uv-envs-error-class"

#: Trailing metadata of an UNAVAILABLE answer after the operation ran: how it ended.
FINISHED_KEY = "uv-envs-finished"


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """Return the status code and message the server answers for ``exc`` (logged if its own)."""
    message = caller_message(exc, current_request_id.get(), MAX_DETAILS)
    return grpc.StatusCode[outcome_of(exc).grpc_code], message


def abort(context: grpc.ServicerContext, exc: BaseException) -> Never:
    """End the RPC with the status for ``exc``. Unexpected errors are logged here."""
    code, details = status_for(exc)
    if isinstance(exc, uv_envs.UvEnvsError):
        # Added to what is there already (the request id).
        current = cast("Iterable[tuple[str, str | bytes]]", context.trailing_metadata() or ())
        added = [(ERROR_CLASS_KEY, type(exc).__name__)]
        if isinstance(exc, uv_envs.AuditUnavailable) and exc.finished is not None:
            added.append((FINISHED_KEY, exc.finished))
        context.set_trailing_metadata((*current, *added))
    context.abort(code, details)


_FALLBACK: dict[grpc.StatusCode, type[uv_envs.UvEnvsError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: uv_envs.InvalidInput,
    grpc.StatusCode.NOT_FOUND: uv_envs.EnvironmentNotFound,
    grpc.StatusCode.ALREADY_EXISTS: uv_envs.EnvironmentAlreadyExists,
    grpc.StatusCode.ABORTED: uv_envs.EnvironmentBusy,
}


class RemoteError(uv_envs.UvEnvsError, RuntimeError):
    """The server failed in a way no core exception describes (INTERNAL, UNAVAILABLE ...).

    ``code`` is the gRPC status code; the message is the server's.

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        self.code = code
        super().__init__(message)


def from_rpc_error(err: grpc.RpcError) -> Exception:
    """Return the core exception a failed call stands for; :class:`RemoteError` if none fits."""
    code = err.code()
    message = err.details() or code.name
    metadata = cast("Iterable[tuple[str, str | bytes]]", err.trailing_metadata() or ())
    trailing = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in metadata}
    named = core_error(trailing.get(ERROR_CLASS_KEY), message, finished=trailing.get(FINISHED_KEY))
    if named is not None:
        return named
    fallback = _FALLBACK.get(code)
    if fallback is not None:
        return fallback(message)
    return RemoteError(f"{code.name}: {message}", code)
