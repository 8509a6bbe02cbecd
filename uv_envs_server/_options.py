"""What a server is started with: one frozen record both front doors (gRPC, HTTP) take.

:func:`~uv_envs_server.create_server` and
:func:`~uv_envs_server.create_http_server` read the same :class:`ServeOptions`,
as the command line builds them from the same flags. The checks that need no
file or socket run when the record is made, so a bad option fails before
anything is bound.
"""

from __future__ import annotations

from typing import Any

import attrs

import uv_envs

from ._limits import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEP_ALIVE_TIMEOUT,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_MAX_PACKAGES,
    DEFAULT_MAX_WATCHERS,
    DEFAULT_MAX_WATCHERS_PER_CLIENT,
    DEFAULT_MIN_CLEANUP_IDLE_HOURS,
    DEFAULT_WORKERS,
    DEFAULT_WRITE_TIMEOUT,
    check_max_packages,
    check_min_cleanup_idle_hours,
    check_timeout,
)
from ._security import TlsFiles, check_address, check_token

#: Below this not even a request naming one env fits.
MIN_MESSAGE_BYTES = 1024


def _check_workers(_: object, __: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"max_workers must be at least 1, not {value}")


def _check_message_bytes(_: object, __: attrs.Attribute[int], value: int) -> None:
    if value < MIN_MESSAGE_BYTES:
        raise ValueError(f"max_message_bytes must be at least {MIN_MESSAGE_BYTES}, not {value}")


def _check_token(_: object, __: attrs.Attribute[str | None], value: str | None) -> None:
    if value is not None:
        check_token(value)


def _check_watchers(_: object, __: attrs.Attribute[int], value: int) -> None:
    if value < 1:
        raise ValueError(f"watcher caps must be at least 1, not {value}")


def _check_packages(_: object, __: attrs.Attribute[int], value: int) -> None:
    check_max_packages(value)


def _check_timeout(_: object, attribute: attrs.Attribute[Any], value: float) -> None:
    check_timeout(attribute.name, value)


def _check_cleanup_floor(_: object, __: attrs.Attribute[float], value: float) -> None:
    check_min_cleanup_idle_hours(value)


@attrs.frozen(kw_only=True)
class ServeOptions:
    """Where and how a uv-envs server listens, and the limits it applies to requests.

    Args:
        host: the address to listen on: loopback (``127.0.0.1``, ``::1``,
            ``localhost``) unless ``allow_remote``. An IPv6 literal may be
            given with or without brackets.
        port: the port; 0 picks a free one (the factories report the one bound).
        allow_remote: allow a host that is not loopback (``0.0.0.0``, a public
            interface); protect such a server with ``tls`` and ``token``.
        tls: serve over TLS (gRPC) or HTTPS (HTTP) with these PEM files.
        token: when given, every call but health checks (and, over HTTP, the
            OpenAPI schema and docs) must carry ``authorization: Bearer <token>``.
        max_workers: threads answering calls. Each running create, add or sync
            holds one; the others go on answering status calls.
        max_message_bytes: the largest request accepted (gRPC answers
            RESOURCE_EXHAUSTED, HTTP 413).
        max_packages: packages one request may name (gRPC answers
            INVALID_ARGUMENT, HTTP 422).
        min_cleanup_idle_hours: a cleanup (gRPC ``Cleanup``, HTTP ``POST
            /v1/cleanup``) never deletes envs used less than this many hours
            ago, by idle time or by disk budget (an unset gRPC ``idle_hours``
            reads as 0); 0 lets ``idle_hours = 0`` delete every env not in use.
        header_timeout: HTTP: seconds a client has for a request's headers,
            from connecting or from the previous answer, however slowly they
            trickle in; then 408 and the connection is closed.
        body_timeout: HTTP: seconds a client has for a request's body once its
            headers are in; then 408 and the connection is closed.
        keep_alive_timeout: HTTP: seconds a connection may sit idle between
            requests before it is closed (a whole number).
        write_timeout: seconds a client may leave what it is sent unread: an
            HTTP client whose send buffer stays full (an event stream it does
            not read) has its connection dropped, a gRPC Watch whose next
            event cannot go out is cancelled; either frees its buffers.
        max_watchers: live event subscribers (gRPC Watch, HTTP ``/v1/events``)
            at once; more are refused (RESOURCE_EXHAUSTED, HTTP 429). The gRPC
            pool gets this many threads more, as each Watch holds one.
        max_watchers_per_client: the same, per client address.

    Raises:
        RemoteAddressNotAllowed: ``host`` is not loopback and ``allow_remote``
            is false (a ValueError).
        ValueError: a bad limit or token (messages never quote the token).

    .. versionadded:: 0.1.0

    """

    host: str = "127.0.0.1"
    port: int = 0
    allow_remote: bool = False
    tls: TlsFiles | None = None
    token: str | None = attrs.field(default=None, validator=_check_token, repr=False)
    max_workers: int = attrs.field(default=DEFAULT_WORKERS, validator=_check_workers)
    max_message_bytes: int = attrs.field(
        default=DEFAULT_MAX_MESSAGE_BYTES, validator=_check_message_bytes
    )
    max_packages: int = attrs.field(default=DEFAULT_MAX_PACKAGES, validator=_check_packages)
    min_cleanup_idle_hours: float = attrs.field(
        default=DEFAULT_MIN_CLEANUP_IDLE_HOURS, validator=_check_cleanup_floor
    )
    max_watchers: int = attrs.field(default=DEFAULT_MAX_WATCHERS, validator=_check_watchers)
    max_watchers_per_client: int = attrs.field(
        default=DEFAULT_MAX_WATCHERS_PER_CLIENT, validator=_check_watchers
    )

    header_timeout: float = attrs.field(default=DEFAULT_HEADER_TIMEOUT, validator=_check_timeout)
    body_timeout: float = attrs.field(default=DEFAULT_BODY_TIMEOUT, validator=_check_timeout)
    keep_alive_timeout: int = attrs.field(
        default=DEFAULT_KEEP_ALIVE_TIMEOUT, validator=_check_timeout
    )
    write_timeout: float = attrs.field(default=DEFAULT_WRITE_TIMEOUT, validator=_check_timeout)

    def __attrs_post_init__(self) -> None:
        # A check of three fields together, after each field's own.
        check_address(self.address, allow_remote=self.allow_remote)

    @property
    def address(self) -> str:
        """``host:port``, an IPv6 literal in brackets: what gRPC binds and the log shows."""
        host = self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.port}"

    @property
    def watcher_limits(self) -> uv_envs.SubscriberLimits:
        """The caps both front doors put on live event subscribers."""
        return uv_envs.SubscriberLimits(self.max_watchers, self.max_watchers_per_client)
