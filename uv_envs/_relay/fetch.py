"""Fetching one file from its origin for the relay: HTTP/1.1 over asyncio streams.

Every URL, the first and each redirect's, is checked against the allow-list
before a connection is made. The body is bounded by ``limit`` (the lock's
size, or the relay's cap) and never more is read; each read waits at most
``read_timeout``; the caller bounds the whole fetch. Every way an origin can fail
(refused connection, TLS, garbage status line, a body cut short, a chunk too
big) becomes :class:`OriginFailed` with the HTTP status the relay answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import ssl
from collections.abc import Callable
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit

from uv_envs._relay.urls import origin_of

MAX_REDIRECTS = 5
_CHUNK = 1 << 20
_MAX_HEADERS = 100
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: [^\r\n]*)?\r?\n")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class OriginFailed(Exception):
    """The origin did not serve the file: ``status`` is what the relay answers its client.

    The message is for the relay's log; clients get only the status.
    """

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


async def fetch_file(
    url: str,
    out: BinaryIO,
    *,
    allowed: Callable[[str], bool],
    limit: int,
    read_timeout: float,
) -> tuple[str, int]:
    """Write ``url``'s body to ``out``; its sha256 (hex) and size."""
    for _ in range(MAX_REDIRECTS + 1):
        if not allowed(url):
            raise OriginFailed(403, f"{url} is not on an allowed origin")
        reader, writer = await _connect(url, read_timeout)
        try:
            status, headers = await _head(reader, writer, url, read_timeout)
            if status in _REDIRECTS and "location" in headers:
                url = urljoin(url, headers["location"])
                continue
            if status != 200:  # noqa: PLR2004 - HTTP OK
                raise OriginFailed(502, f"{url} answered {status}")
            return await _body(reader, headers, out, limit, read_timeout)
        except (OSError, EOFError, ValueError, UnicodeError) as exc:
            # IncompleteReadError is an EOFError; a line past the stream's limit a ValueError.
            raise OriginFailed(502, f"{url}: {type(exc).__name__}") from exc
        except TimeoutError as exc:
            raise OriginFailed(504, f"{url} sent nothing for {read_timeout:g} s") from exc
        finally:
            writer.close()
    raise OriginFailed(502, f"more than {MAX_REDIRECTS} redirects")


async def _connect(url: str, wait: float) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    split = urlsplit(url)
    if origin_of(url) is None or split.hostname is None:
        raise OriginFailed(502, "a malformed origin URL")
    tls = ssl.create_default_context() if split.scheme == "https" else None
    port = split.port or (443 if tls else 80)
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(split.hostname, port, ssl=tls, limit=1 << 16), wait
        )
    except (OSError, ValueError) as exc:
        raise OriginFailed(502, f"cannot connect to {split.netloc}: {exc}") from exc
    except TimeoutError as exc:
        raise OriginFailed(504, f"{split.netloc} did not accept in {wait:g} s") from exc


async def _head(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, url: str, wait: float
) -> tuple[int, dict[str, str]]:
    """Send the request; the answer's status and headers (names lower case)."""
    split = urlsplit(url)
    target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    writer.write(
        f"GET {target} HTTP/1.1\r\nHost: {split.netloc}\r\nUser-Agent: uv-envs-relay\r\n"
        "Accept-Encoding: identity\r\nConnection: close\r\n\r\n".encode("ascii")
    )
    await asyncio.wait_for(writer.drain(), wait)
    matched = _STATUS_LINE.fullmatch(await asyncio.wait_for(reader.readline(), wait))
    if matched is None:
        raise OriginFailed(502, f"{url} answered no HTTP status line")
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS):
        line = (await asyncio.wait_for(reader.readline(), wait)).decode("latin-1").strip()
        if not line:
            return int(matched[1]), headers
        name, colon, value = line.partition(":")
        if not colon:
            raise OriginFailed(502, f"{url} sent a malformed header")
        headers[name.strip().lower()] = value.strip()
    raise OriginFailed(502, f"{url} sent more than {_MAX_HEADERS} headers")


async def _body(
    reader: asyncio.StreamReader,
    headers: dict[str, str],
    out: BinaryIO,
    limit: int,
    wait: float,
) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0

    async def exactly(count: int) -> None:
        nonlocal size
        if size + count > limit:
            raise OriginFailed(502, f"more than the {limit} bytes expected")
        while count > 0:
            chunk = await asyncio.wait_for(reader.readexactly(min(count, _CHUNK)), wait)
            keep(chunk)
            count -= len(chunk)

    def keep(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > limit:
            raise OriginFailed(502, f"more than the {limit} bytes expected")
        digest.update(chunk)
        out.write(chunk)  # local disk: fast enough for the loop, one chunk at a time

    if "chunked" in headers.get("transfer-encoding", "").lower():
        while length := int((await asyncio.wait_for(reader.readline(), wait)).split(b";")[0], 16):
            await exactly(length)
            await asyncio.wait_for(reader.readexactly(2), wait)  # the chunk's CRLF
    elif "content-length" in headers:
        await exactly(int(headers["content-length"]))
    else:
        while chunk := await asyncio.wait_for(reader.read(_CHUNK), wait):
            keep(chunk)
    return digest.hexdigest(), size
