"""A wheel relay: each locked file fetched from the index once, served to every machine.

The cluster service (wired by :func:`~uv_envs.ray.ClusterEnvManager`) runs one on its
own node's address and hands its URL to the nodes with each published env;
``uv-envs relay`` runs one on its own for machines whose ``UV_ENVS_WHEEL_RELAY``
names it. Their uv downloads through it (:mod:`uv_envs._relay.urls` rewrites the URLs) and
checks every file against the lock's hash, as it checks the index's. The relay
checks the hash too before it keeps a file, so it never serves bytes other than
the lock's: a file whose origin serves other bytes is refused (502) and not
kept. Concurrent requests for one file wait for one fetch.

Its URL carries a token (random unless given): only those given the URL get
anything but 404. Files live under the
root's ``relay/`` folder, named by their hash; a restart serves them again
without fetching, and files nothing asked for within ``max_idle`` go.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import logging
import os
import secrets
import shutil
import threading
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

import attrs

from uv_envs._relay.http import BackgroundHTTPServer
from uv_envs._relay.urls import RelayedFile, read_relay_path

logger = logging.getLogger("uv_envs")

#: Seconds the relay waits on its origin for a connection or the next bytes.
FETCH_TIMEOUT = 60.0
#: Seconds a kept file may go unrequested before :meth:`WheelRelay.prune` removes it.
MAX_IDLE = 7 * 86400.0
_CHUNK = 1 << 20


class RelayRefused(Exception):
    """The relay could not get the lock's bytes of a file (unreachable, or other bytes)."""


@attrs.frozen
class RelayCounts:
    """What a relay did since it started."""

    fetched_files: int
    fetched_bytes: int
    served_files: int
    served_bytes: int
    refused: int

    def to_dict(self) -> dict[str, int]:
        return attrs.asdict(self)


@attrs.define
class WheelRelay:
    """Serves locked files by hash from ``directory``, fetching each missing one once."""

    directory: Path
    host: str
    port: int = 0
    fetch_timeout: float = FETCH_TIMEOUT
    token: str = attrs.field(factory=lambda: secrets.token_urlsafe(16), repr=False)
    _server: BackgroundHTTPServer | None = attrs.field(default=None, init=False)
    _guard: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _fetching: dict[str, threading.Lock] = attrs.field(factory=dict, init=False)
    _counts: dict[str, int] = attrs.field(factory=dict, init=False)

    @property
    def url(self) -> str:
        """What nodes set as ``Settings.wheel_relay``; valid once started."""
        if self._server is None:
            msg = "the relay is not running"
            raise RuntimeError(msg)
        return f"http://{self.host}:{self._server.address[1]}/{self.token}"

    def start(self) -> str:
        """Serve in background threads; return :attr:`url`."""
        (self.directory / "partial").mkdir(parents=True, exist_ok=True)
        handler = type("_Handler", (_Handler,), {"relay": self})
        self._server = BackgroundHTTPServer.start(self.host, self.port, handler, "uv-envs-relay")
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        self._server = None

    def counts(self) -> RelayCounts:
        with self._guard:
            c = dict(self._counts)
        return RelayCounts(
            fetched_files=c.get("fetched_files", 0),
            fetched_bytes=c.get("fetched_bytes", 0),
            served_files=c.get("served_files", 0),
            served_bytes=c.get("served_bytes", 0),
            refused=c.get("refused", 0),
        )

    def prune(self, max_idle: float = MAX_IDLE) -> int:
        """Remove kept files nothing asked for within ``max_idle`` seconds; how many went."""
        removed = 0
        horizon = time.time() - max_idle
        for path in self.directory.glob("??/*"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < horizon:
                    path.unlink()
                    removed += 1
        return removed

    def path_of(self, digest: str) -> Path:
        return self.directory / digest[:2] / digest

    def kept(self, wanted: RelayedFile) -> Path:
        """The file's bytes on disk, fetched first if missing; raises :class:`RelayRefused`."""
        path = self.path_of(wanted.digest)
        if not path.exists():
            with self._guard:
                single = self._fetching.setdefault(wanted.digest, threading.Lock())
            with single:
                if not path.exists():
                    self._fetch(wanted, path)
        with contextlib.suppress(OSError):
            path.touch()  # requested now: prune keeps it
        return path

    def _fetch(self, wanted: RelayedFile, path: Path) -> None:
        partial = (
            self.directory / "partial" / f"{wanted.digest}.{os.getpid()}.{threading.get_ident()}"
        )
        digest = hashlib.sha256()
        size = 0
        try:
            with (
                urllib.request.urlopen(wanted.origin, timeout=self.fetch_timeout) as answer,  # noqa: S310 - http(s) only, checked by read_relay_path
                partial.open("wb") as out,
            ):
                while chunk := answer.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            self._count(refused=1)
            msg = f"cannot fetch {wanted.origin}: {exc}"
            raise RelayRefused(msg) from exc
        if digest.hexdigest() != wanted.digest:
            partial.unlink(missing_ok=True)
            self._count(refused=1)
            msg = (
                f"{wanted.origin} served {size} bytes with sha256 {digest.hexdigest()}, "
                f"the lock names {wanted.digest}"
            )
            raise RelayRefused(msg)
        path.parent.mkdir(exist_ok=True)
        partial.replace(path)
        self._count(fetched_files=1, fetched_bytes=size)

    def _count(self, **amounts: int) -> None:
        with self._guard:
            for name, amount in amounts.items():
                self._counts[name] = self._counts.get(name, 0) + amount

    def _own(self, path: str) -> str | None:
        """The part of a request path after the token; None for a path without it."""
        prefix = f"/{self.token}/"
        return path[len(prefix) :] if path.startswith(prefix) else None


class _Handler(http.server.BaseHTTPRequestHandler):
    relay: ClassVar[WheelRelay]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        relay = self.relay
        rest = relay._own(self.path.split("?", 1)[0])  # noqa: SLF001 - its own relay
        wanted = read_relay_path(rest) if rest is not None else None
        if wanted is None:
            self.send_error(404)
            return
        try:
            path = relay.kept(wanted)
        except RelayRefused as exc:
            logger.warning("wheel relay: %s", exc)
            self.send_error(502, explain=str(exc))
            return
        with path.open("rb") as source:
            size = os.fstat(source.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            shutil.copyfileobj(source, self.wfile, _CHUNK)
        relay._count(served_files=1, served_bytes=size)  # noqa: SLF001

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        pass
