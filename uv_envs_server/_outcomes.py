"""One table from core exception to outcome, read by both front doors.

The gRPC side turns an :class:`Outcome` into a status code
(:mod:`uv_envs_server._grpc.errors`), the HTTP side into a status and an
``application/problem+json`` body (:mod:`uv_envs_server._http.problems`). A
new exception class is mapped here once, and both wires agree.

====================================  ====================  ===========
core exception                        gRPC status code      HTTP status
====================================  ====================  ===========
InvalidInput (and subclasses)         INVALID_ARGUMENT      422
RayIncompatible (and subclasses)      INVALID_ARGUMENT      422
EnvironmentNotFound                   NOT_FOUND             404
EnvironmentAlreadyExists              ALREADY_EXISTS        409
EnvironmentNotReady                   FAILED_PRECONDITION   409
EnvironmentBusy                       ABORTED               423
EnvironmentInUse                      FAILED_PRECONDITION   423
OperationCancelled                    CANCELLED             409
UvTimeout                             DEADLINE_EXCEEDED     504
ResolutionFailed                      FAILED_PRECONDITION   422
UvError (other)                       FAILED_PRECONDITION   502
AuditUnavailable                      UNAVAILABLE           503
RayClusterUnavailable                 UNAVAILABLE           503
TooManySubscribers                    RESOURCE_EXHAUSTED    429
UvNotFound, StorageError, other       INTERNAL              500
====================================  ====================  ===========

``ResolutionFailed`` is 422 over HTTP: the requested packages do not
resolve, which is the caller's input, not a broken upstream. So is
``RayIncompatible``: the spec cannot run on the served cluster (another
Python minor than its nodes, a pin that breaks Ray).

``AuditUnavailable`` is the one server-side failure worth retrying: the
audit database is away for a while. The caller learns whether the operation
changed the env (:func:`unavailable_message`), not where the database is.
``RayClusterUnavailable`` is the other: the served cluster's head is away;
its message names the cluster, and nothing was changed.
"""

from __future__ import annotations

import enum
import logging

import uv_envs

logger = logging.getLogger("uv_envs_server")


class Outcome(enum.Enum):
    """How a failed call ends, on either wire: ``(grpc code name, http status)``."""

    BAD_INPUT = ("INVALID_ARGUMENT", 422)
    NOT_FOUND = ("NOT_FOUND", 404)
    EXISTS = ("ALREADY_EXISTS", 409)
    NOT_READY = ("FAILED_PRECONDITION", 409)
    BUSY = ("ABORTED", 423)
    LEASED = ("FAILED_PRECONDITION", 423)
    CANCELLED = ("CANCELLED", 409)
    UV_TIMEOUT = ("DEADLINE_EXCEEDED", 504)
    UNRESOLVABLE = ("FAILED_PRECONDITION", 422)
    UV_FAILED = ("FAILED_PRECONDITION", 502)
    UNAVAILABLE = ("UNAVAILABLE", 503)
    OVERLOADED = ("RESOURCE_EXHAUSTED", 429)
    INTERNAL = ("INTERNAL", 500)

    def __init__(self, grpc_code: str, http_status: int) -> None:
        self.grpc_code = grpc_code
        self.http_status = http_status


#: First match wins, so subclasses come before their bases.
OUTCOMES: tuple[tuple[type[BaseException], Outcome], ...] = (
    (uv_envs.InvalidInput, Outcome.BAD_INPUT),
    (uv_envs.RayIncompatible, Outcome.BAD_INPUT),
    (uv_envs.EnvironmentNotFound, Outcome.NOT_FOUND),
    (uv_envs.EnvironmentAlreadyExists, Outcome.EXISTS),
    (uv_envs.EnvironmentNotReady, Outcome.NOT_READY),
    (uv_envs.EnvironmentBusy, Outcome.BUSY),
    (uv_envs.EnvironmentInUse, Outcome.LEASED),
    (uv_envs.OperationCancelled, Outcome.CANCELLED),
    (uv_envs.UvTimeout, Outcome.UV_TIMEOUT),
    (uv_envs.ResolutionFailed, Outcome.UNRESOLVABLE),
    (uv_envs.UvError, Outcome.UV_FAILED),
    (uv_envs.AuditUnavailable, Outcome.UNAVAILABLE),
    (uv_envs.RayClusterUnavailable, Outcome.UNAVAILABLE),
    (uv_envs.TooManySubscribers, Outcome.OVERLOADED),
)


def outcome_of(exc: BaseException) -> Outcome:
    """The outcome for ``exc``; :attr:`Outcome.INTERNAL` for anything unmapped."""
    for cls, outcome in OUTCOMES:
        if isinstance(exc, cls):
            return outcome
    return Outcome.INTERNAL


def internal_message(exc: BaseException, request_id: str | None) -> str:
    """What a caller is told about an INTERNAL failure: the class and the request id only.

    The exception's own message may quote server paths or files; it goes to
    the server log instead.
    """
    where = f" under request id {request_id}" if request_id else ""
    return f"internal error ({type(exc).__name__}); see the server log{where}"


def unavailable_message(exc: uv_envs.AuditUnavailable, request_id: str | None) -> str:
    """What a caller is told when the audit database is away: whether the env changed.

    The full message names the database's host and port; it goes to the server log.
    """
    where = f" under request id {request_id}" if request_id else ""
    if exc.finished is None:
        done = "nothing was changed; retry when it is back"
    else:
        done = (
            f"the operation finished {exc.finished}; its audit record is completed "
            "when the database is back"
        )
    return f"the audit database is unavailable: {done} (details in the server log{where})"


def caller_message(exc: BaseException, request_id: str | None, limit: int) -> str:
    """What the caller is told about ``exc``, on any wire; the server's own trouble is logged here.

    An unreachable audit database says whether the env changed; an INTERNAL
    failure names only the class and the request id (its message, which may
    quote server files, goes to the log); anything else is its message, cut
    to ``limit`` characters.
    """
    if isinstance(exc, uv_envs.AuditUnavailable):
        logger.warning("%s (request id %s)", exc, request_id)
        return unavailable_message(exc, request_id)
    if outcome_of(exc) is Outcome.INTERNAL:
        if isinstance(exc, uv_envs.UvEnvsError):
            logger.error("%s: %s (request id %s)", type(exc).__name__, exc, request_id)
        else:
            logger.error("unexpected error (request id %s)", request_id, exc_info=exc)
        return internal_message(exc, request_id)
    return shorten(str(exc) or type(exc).__name__, limit)


def core_error(
    name: object, message: str, *, finished: str | None = None
) -> uv_envs.UvEnvsError | None:
    """The core exception a server named (its class name), rebuilt; None if none fits.

    The other way round from the table above, for both clients: each raises the
    class the in-process API would (``except EnvironmentNotFound`` works over
    the wire), or its own fallback for the status when the name is unknown or
    the class needs more than a message to be made (``PythonNotFound``).
    """
    cls = getattr(uv_envs, name, None) if isinstance(name, str) and name else None
    if not (isinstance(cls, type) and issubclass(cls, uv_envs.UvEnvsError)):
        return None
    if issubclass(cls, uv_envs.AuditUnavailable):
        return cls(message, finished=finished)
    try:
        return cls(message)
    except TypeError:
        return None


#: gRPC sends the message in a header; keep it well under the 8 KiB default.
MAX_DETAILS = 3000


def shorten(text: str, limit: int = MAX_DETAILS) -> str:
    """Keep the head and the tail of a long message; uv puts the cause last."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head - 30
    return f"{text[:head]}\n[... {len(text) - head - tail} characters cut ...]\n{text[-tail:]}"
