"""How much a wheel relay gives anyone: time, connections, fetches, bytes."""

from __future__ import annotations

import attrs

_GIB = 1 << 30


@attrs.frozen
class RelayLimits:
    """Every bound of a relay; the defaults suit a cluster of a few hundred nodes.

    Connections past a cap are answered 503 and closed; requests for new files
    past a fetch cap are answered 503 (uv then tries again, or the index).
    """

    #: Seconds a client has to send a request line and its headers (and idle keep-alive).
    header_timeout: float = 10.0
    #: Seconds a client may take to accept each chunk of an answer.
    write_timeout: float = 60.0
    #: Bytes of a request line and headers.
    max_request_bytes: int = 8192
    #: Open client connections, in all and from one address.
    max_connections: int = 512
    max_client_connections: int = 128
    #: Seconds one fetch may take in all, queueing included; all its waiters get its end.
    fetch_deadline: float = 900.0
    #: Origins talked to at once; further fetches queue within their deadline.
    max_fetches: int = 16
    #: Files being fetched or queued at once, and requests one address may have waiting.
    max_pending_fetches: int = 256
    max_client_waits: int = 64
    #: Bytes of a file whose relayed URL states no size (the lock's size bounds the rest).
    max_file_bytes: int = 4 * _GIB
    #: Bytes of kept files; past it the least recently requested go.
    max_kept_bytes: int = 20 * _GIB
