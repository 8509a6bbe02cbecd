"""The limits both front doors (gRPC and HTTP) apply before the core sees a request."""

from __future__ import annotations

import math
from collections.abc import Sequence

import uv_envs

#: Worker threads by default: enough for several slow creates while status calls go on.
DEFAULT_WORKERS = 16

#: Requests up to this size are accepted by default; larger ones get RESOURCE_EXHAUSTED.
DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

#: Packages one request may name, by default (the core's own limit).
DEFAULT_MAX_PACKAGES = uv_envs.MAX_PACKAGES

#: Live event subscribers (gRPC Watch and HTTP /v1/events) per server and per client address.
DEFAULT_MAX_WATCHERS = 32
DEFAULT_MAX_WATCHERS_PER_CLIENT = 8

#: Event names one Watch filter may list (gRPC ``names``, HTTP ``names``): each
#: known name once; duplicates count, so a request cannot make the server dedupe thousands.
MAX_EVENT_NAMES = len(uv_envs.EVENT_NAMES)

#: Operations listed per page when a GetOperations request leaves ``limit`` at 0.
DEFAULT_OPERATIONS_LIMIT = 50

#: The least idle time a cleanup over gRPC or HTTP deletes at, by default: the
#: library's, which the ``uv-envs cleanup`` command applies too.
DEFAULT_MIN_CLEANUP_IDLE_HOURS = uv_envs.DEFAULT_MIN_CLEANUP_IDLE_HOURS


#: Seconds a client has for a request's headers, from the connection's start or the
#: end of the previous answer; bytes trickled in do not extend it (slowloris).
DEFAULT_HEADER_TIMEOUT = 10.0

#: Seconds a client has to send a request's body, once its headers are in.
DEFAULT_BODY_TIMEOUT = 60.0

#: Seconds an HTTP connection may sit idle between requests before it is closed.
DEFAULT_KEEP_ALIVE_TIMEOUT = 5

#: Seconds a client may leave what it is sent unread (an HTTP response's send
#: buffer full, a gRPC Watch message unsent) before its connection or call is ended.
DEFAULT_WRITE_TIMEOUT = 30.0


def check_timeout(name: str, seconds: float) -> None:
    """Raise ValueError unless ``seconds`` is a finite number > 0."""
    if not (seconds > 0 and math.isfinite(seconds)):
        raise ValueError(f"{name} must be a finite number of seconds > 0, not {seconds}")


def limit_packages(packages: Sequence[str], max_packages: int) -> tuple[str, ...]:
    """``packages`` as a tuple; InvalidInput when there are more than ``max_packages``.

    The request limit both front doors (gRPC and HTTP) apply before the core sees a list.
    """
    if len(packages) > max_packages:
        msg = f"{len(packages)} packages given; at most {max_packages} per request"
        raise uv_envs.InvalidInput(msg)
    return tuple(packages)


def limit_event_names(names: Sequence[str]) -> frozenset[str]:
    """The distinct names of a Watch filter; InvalidInput past :data:`MAX_EVENT_NAMES` entries.

    Both front doors apply it, so a filter is refused or accepted alike on either wire.
    """
    if len(names) > MAX_EVENT_NAMES:
        msg = f"{len(names)} event names given; at most {MAX_EVENT_NAMES} per filter"
        raise uv_envs.InvalidInput(msg)
    return frozenset(names)


def check_max_packages(max_packages: int) -> None:
    """Raise ValueError unless a request may name at least one package."""
    if max_packages < 1:
        raise ValueError(f"max_packages must be at least 1, not {max_packages}")


def check_min_cleanup_idle_hours(hours: float) -> None:
    """Raise ValueError unless the cleanup floor is a finite number of hours >= 0."""
    if not (hours >= 0 and math.isfinite(hours)):
        # NaN fails every comparison, so it would otherwise read as "no minimum".
        raise ValueError(f"min_cleanup_idle_hours must be a finite number >= 0, not {hours}")
