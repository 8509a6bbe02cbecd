"""A wheel relay: each locked file fetched from the index once, served to every machine.

The cluster service (wired by :func:`~uv_envs.ray.ClusterEnvManager`) runs one on its
own node's address and hands its URL to the nodes with each published env;
``uv-envs relay`` runs one on its own for machines whose ``UV_ENVS_WHEEL_RELAY``
names it. Their uv downloads through it (:mod:`uv_envs._relay.urls` rewrites the URLs) and
checks every file against the lock's hash, as it checks the index's.

What it fetches: only what a relayed URL names, from an allowed origin
(:mod:`uv_envs._relay.origins`), at most the lock's size (or
``max_file_bytes``), kept only if its sha256 is the lock's. Anything else gets
a bare status (403 origin not allowed, 502 origin failed or other bytes, 503
busy, 504 deadline) that says nothing of what the origin served. Concurrent
requests for one file wait for one fetch and all get its one outcome; a fetch
nobody waits for any more is cancelled; partial files never outlive their fetch.

Its URL carries a token (random unless given): only those given the URL get
anything but 404. Files live under the root's ``relay/`` folder, named by
their hash, within ``max_kept_bytes`` (least recently requested go first); a
restart serves them again without fetching, and files nothing asked for within
``max_idle`` go.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections import Counter
from pathlib import Path

import attrs

from uv_envs._relay.connections import Answer, LoopServer, Request
from uv_envs._relay.fetch import OriginFailed, fetch_file
from uv_envs._relay.limits import RelayLimits
from uv_envs._relay.origins import AllowedOrigins
from uv_envs._relay.urls import RelayedFile, read_relay_path

logger = logging.getLogger("uv_envs")

#: Seconds the relay waits on its origin for a connection or the next bytes
#: (the whole fetch is bounded by ``RelayLimits.fetch_deadline``).
FETCH_TIMEOUT = 60.0
#: Seconds a kept file may go unrequested before :meth:`WheelRelay.prune` removes it.
MAX_IDLE = 7 * 86400.0


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
class _Fetch:
    task: asyncio.Task[None]
    waiters: int = 0


@attrs.define
class WheelRelay:
    """Serves locked files by hash from ``directory``, fetching each missing one once."""

    directory: Path
    host: str
    port: int = 0
    fetch_timeout: float = FETCH_TIMEOUT
    token: str = attrs.field(factory=lambda: secrets.token_urlsafe(16), repr=False)
    origins: AllowedOrigins = attrs.field(factory=AllowedOrigins)
    limits: RelayLimits = attrs.field(factory=RelayLimits)
    _server: LoopServer | None = attrs.field(default=None, init=False)
    _guard: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _counts: Counter[str] = attrs.field(factory=Counter, init=False)
    # Loop-thread state only (no lock): the fetches under way, requests waiting per client.
    # A fetch is one file from one origin at one stated size: a request naming the same
    # digest elsewhere (or at a wrong size) gets its own fetch, never fails another's.
    _fetches: dict[RelayedFile, _Fetch] = attrs.field(factory=dict, init=False)
    _waits: Counter[str] = attrs.field(factory=Counter, init=False)
    _slots: asyncio.Semaphore | None = attrs.field(default=None, init=False)

    @property
    def url(self) -> str:
        """What nodes set as ``Settings.wheel_relay``; valid once started."""
        if self._server is None:
            msg = "the relay is not running"
            raise RuntimeError(msg)
        return f"http://{self.host}:{self.port}/{self.token}"

    def start(self) -> str:
        """Serve from an event loop thread; return :attr:`url`."""
        (self.directory / "partial").mkdir(parents=True, exist_ok=True)
        self.sweep_partial()
        server = LoopServer(self._answer, self.limits, "uv-envs-relay")
        self._slots = asyncio.Semaphore(self.limits.max_fetches)
        self.port = server.start(self.host, self.port)
        self._server = server
        return self.url

    def stop(self) -> None:
        """Close every connection and cancel every fetch (their partial files go)."""
        if self._server is not None:
            self._server.stop()
        self._server = None

    @property
    def connections(self) -> int:
        """Client connections open now."""
        return 0 if self._server is None else self._server.connections

    def counts(self) -> RelayCounts:
        with self._guard:
            c = Counter(self._counts)
        return RelayCounts(
            fetched_files=c["fetched_files"],
            fetched_bytes=c["fetched_bytes"],
            served_files=c["served_files"],
            served_bytes=c["served_bytes"],
            refused=c["refused"],
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
        self.sweep_partial()
        return removed

    def sweep_partial(self) -> None:
        """Remove the partial files of relays that died (a fetch of a live one removes its own)."""
        for path in (self.directory / "partial").glob("*"):
            owner = path.name.split(".")[1] if path.name.count(".") >= 2 else ""  # noqa: PLR2004 - <digest>.<pid>.<nonce>
            if owner.isdigit() and (int(owner) == os.getpid() or _alive(int(owner))):
                continue
            path.unlink(missing_ok=True)

    def path_of(self, digest: str) -> Path:
        return self.directory / digest[:2] / digest

    # -- on the loop thread ---------------------------------------------------------------

    async def _answer(self, request: Request) -> Answer | None:
        wanted = self._wanted(request.path)
        if wanted is None:
            return Answer(404)
        if not self.origins.allows(wanted.origin):
            logger.warning("wheel relay: %s is not on an allowed origin", wanted.origin)
            self._count(refused=1)
            return Answer(403)
        path = self.path_of(wanted.digest)
        if not path.exists():
            refused = await self._wait(wanted, request)
            if refused is not None:
                return refused
        with contextlib.suppress(OSError):
            path.touch()  # requested now: prune and the disk budget keep it
            self._count(served_files=1, served_bytes=path.stat().st_size)
        return Answer(200, path)

    def _wanted(self, path: str) -> RelayedFile | None:
        """The file a request path asks for; None without the token (compared in constant time)."""
        token, _, rest = path.removeprefix("/").partition("/")
        if not hmac.compare_digest(token.encode("latin-1"), self.token.encode()):
            return None
        return read_relay_path(rest)

    async def _wait(self, wanted: RelayedFile, request: Request) -> Answer | None:
        """Wait for the one fetch of ``wanted``; None once fetched, else the answer."""
        limits = self.limits
        fetch = self._fetches.get(wanted)
        if self._waits[request.client] >= limits.max_client_waits or (
            fetch is None and len(self._fetches) >= limits.max_pending_fetches
        ):
            return Answer(503)
        if fetch is None:
            fetch = _Fetch(asyncio.create_task(self._fetch(wanted)))
            self._fetches[wanted] = fetch
            fetch.task.add_done_callback(lambda task: self._done(wanted, fetch, task))
        fetch.waiters += 1
        self._waits[request.client] += 1
        gone = asyncio.ensure_future(request.gone.wait())
        try:
            await asyncio.wait({fetch.task, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            fetch.waiters -= 1
            self._waits[request.client] -= 1
            if self._waits[request.client] <= 0:
                del self._waits[request.client]
            if fetch.waiters == 0 and not fetch.task.done():
                fetch.task.cancel()  # nobody waits for it any more
                self._fetches.pop(wanted, None)
        if not fetch.task.done():
            return None if request.gone.is_set() else Answer(503)
        error = None if fetch.task.cancelled() else fetch.task.exception()
        if fetch.task.cancelled() or error is not None:
            return Answer(error.status if isinstance(error, OriginFailed) else 502)
        return None

    def _done(self, wanted: RelayedFile, fetch: _Fetch, task: asyncio.Task[None]) -> None:
        if self._fetches.get(wanted) is fetch:
            del self._fetches[wanted]
        if not task.cancelled() and task.exception() is not None:
            self._count(refused=1)

    async def _fetch(self, wanted: RelayedFile) -> None:
        """Fetch ``wanted`` into its kept place within the deadline, or raise OriginFailed."""
        assert self._slots is not None  # noqa: S101 - set by start
        limit = wanted.size if wanted.size is not None else self.limits.max_file_bytes
        partial = (
            self.directory / "partial" / f"{wanted.digest}.{os.getpid()}.{secrets.token_hex(4)}"
        )
        try:
            async with asyncio.timeout(self.limits.fetch_deadline), self._slots:
                with partial.open("wb") as out:
                    digest, size = await fetch_file(
                        wanted.origin,
                        out,
                        allowed=self.origins.allows,
                        limit=limit,
                        read_timeout=self.fetch_timeout,
                    )
            _check(wanted, digest)
            path = self.path_of(wanted.digest)
            path.parent.mkdir(exist_ok=True)
            partial.replace(path)
        except TimeoutError as exc:
            logger.warning("wheel relay: %s took longer than the deadline", wanted.origin)
            raise OriginFailed(504, "deadline") from exc
        except OriginFailed as exc:
            logger.warning("wheel relay: %s", exc)
            raise
        except OSError as exc:  # the relay's own disk
            logger.warning("wheel relay: cannot keep %s: %s", wanted.filename, exc)
            raise OriginFailed(503, "disk") from exc
        finally:
            partial.unlink(missing_ok=True)
        self._count(fetched_files=1, fetched_bytes=size)
        self._keep_within_budget(path)

    def _keep_within_budget(self, newest: Path) -> None:
        """Remove the least recently requested kept files past ``max_kept_bytes``."""
        kept: list[tuple[float, int, Path]] = []
        for path in self.directory.glob("??/*"):
            with contextlib.suppress(OSError):
                stat = path.stat()
                kept.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in kept)
        for _, size, path in sorted(kept):
            if total <= self.limits.max_kept_bytes:
                break
            if path != newest:  # the one its waiters are about to get
                path.unlink(missing_ok=True)
                total -= size

    def _count(self, **amounts: int) -> None:
        with self._guard:
            self._counts.update(amounts)


def _check(wanted: RelayedFile, digest: str) -> None:
    if digest != wanted.digest:
        raise OriginFailed(502, f"{wanted.origin} did not serve the lock's bytes")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True
