"""A package index on loopback that counts what it serves: tests and benchmarks without PyPI.

uv (and pip, and Ray's ``uv``/``pip`` fields) resolve and download against it as
against any PEP 503 index; each file's requests and bytes are counted, so a test
can say "the index served this set once" or "nothing at all".
"""

from __future__ import annotations

import functools
import hashlib
import html
import http.server
import re
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

import attrs
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_name,
    parse_sdist_filename,
    parse_wheel_filename,
)

from uv_envs.testing._http import BackgroundHTTPServer

_FILES = "files"
_SUFFIXES = (".whl", ".tar.gz", ".zip")
_METADATA = ".metadata"  # PEP 658: a wheel's METADATA beside it


def _normalised(name: str) -> str:
    """A project name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _project_of(filename: str) -> str:
    """The PEP 503 normalised project name a distribution file belongs to."""
    try:
        if filename.endswith(".whl"):
            return str(canonicalize_name(parse_wheel_filename(filename)[0]))
        return str(canonicalize_name(parse_sdist_filename(filename)[0]))
    except (InvalidWheelFilename, InvalidSdistFilename):
        return _normalised(filename.split("-", 1)[0])


@functools.lru_cache(maxsize=4096)
def _wheel_metadata(wheel: Path) -> bytes | None:
    """The ``.dist-info/METADATA`` inside a wheel (None if it has none)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                parts = name.split("/")
                if len(parts) == 2 and parts[0].endswith(".dist-info") and parts[1] == "METADATA":  # noqa: PLR2004
                    return archive.read(name)
    except (OSError, zipfile.BadZipFile):
        return None
    return None


@attrs.frozen
class Served:
    """What the index served of one file."""

    requests: int
    bytes: int


@attrs.define
class CountingIndex:
    """A PEP 503 simple index over the wheels and sdists of ``wheelhouse``.

    Example::

        with CountingIndex(wheelhouse) as index:
            settings = Settings(root=..., index=IndexSettings(index_url=index.url))
            ...
            assert index.bytes_served() == sum(sizes)

    ``url`` is the simple index (``http://host:port/simple``); files are listed with
    their sha256, so locks made against it carry hashes as from PyPI, and each
    wheel's metadata is served on its own (PEP 658), so a resolver reads a
    wheel's dependencies without downloading it, as from PyPI. Only whole-file
    downloads count as served files.
    """

    wheelhouse: Path
    host: str = "127.0.0.1"
    port: int = 0
    _server: BackgroundHTTPServer | None = attrs.field(default=None, init=False)
    _guard: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _served: dict[str, Served] = attrs.field(factory=dict, init=False)
    _pages: int = attrs.field(default=0, init=False)
    _digests: dict[str, str] = attrs.field(factory=dict, init=False)
    _url: str | None = attrs.field(default=None, init=False)

    @property
    def url(self) -> str:
        """The simple index's URL (``--index-url``): where it serves, or served before a stop."""
        if self._url is None:
            msg = "the index was never started"
            raise RuntimeError(msg)
        return self._url

    def start(self) -> str:
        """Serve in a background thread; return :attr:`url`."""
        handler = type("_Handler", (_Handler,), {"index": self})
        self._server = BackgroundHTTPServer.start(self.host, self.port, handler, "counting-index")
        host, port = self._server.address
        self._url = f"http://{host}:{port}/simple"
        return self._url

    def stop(self) -> None:
        """Stop serving: from now on the index is unreachable."""
        if self._server is not None:
            self._server.stop()
        self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def served(self) -> dict[str, Served]:
        """Each file's requests and bytes since the start or the last :meth:`reset`."""
        with self._guard:
            return dict(self._served)

    def bytes_served(self) -> int:
        """All file bytes served (pages not counted: they are a few hundred bytes each)."""
        return sum(s.bytes for s in self.served().values())

    def file_requests(self) -> int:
        return sum(s.requests for s in self.served().values())

    def page_requests(self) -> int:
        with self._guard:
            return self._pages

    def reset(self) -> None:
        with self._guard:
            self._served.clear()
            self._pages = 0

    # -- used by the handler --------------------------------------------------

    def _files_of(self, project: str) -> Iterator[Path]:
        for path in sorted(self.wheelhouse.iterdir()):
            if path.name.endswith(_SUFFIXES) and _project_of(path.name) == project:
                yield path

    def _digest(self, path: Path) -> str:
        with self._guard:
            known = self._digests.get(path.name)
        if known is None:
            known = hashlib.sha256(path.read_bytes()).hexdigest()
            with self._guard:
                self._digests[path.name] = known
        return known

    def _page(self, project: str) -> bytes | None:
        files = list(self._files_of(project))
        with self._guard:
            self._pages += 1
        if not files:
            return None
        links = "".join(self._link(p) for p in files)
        return f"<!DOCTYPE html><html><body>\n{links}</body></html>\n".encode()

    def _link(self, path: Path) -> str:
        name = html.escape(path.name)
        metadata = _wheel_metadata(path) if path.name.endswith(".whl") else None
        attributes = ""
        if metadata is not None:
            digest = hashlib.sha256(metadata).hexdigest()
            attributes = f' data-core-metadata="sha256={digest}"'
            attributes += f' data-dist-info-metadata="sha256={digest}"'
        href = f"../../{_FILES}/{name}#sha256={self._digest(path)}"
        return f'<a href="{href}"{attributes}>{name}</a><br/>\n'

    def _file(self, name: str) -> bytes | None:
        if name.endswith(_METADATA):
            wheel = self.wheelhouse / name.removesuffix(_METADATA)
            return _wheel_metadata(wheel) if "/" not in name and wheel.is_file() else None
        path = self.wheelhouse / name
        if "/" in name or not name.endswith(_SUFFIXES) or not path.is_file():
            return None
        data = path.read_bytes()
        with self._guard:
            before = self._served.get(name, Served(0, 0))
            self._served[name] = Served(before.requests + 1, before.bytes + len(data))
        return data


class _Handler(http.server.BaseHTTPRequestHandler):
    index: ClassVar[CountingIndex]
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
        data: bytes | None = None
        content_type = "application/octet-stream"
        if len(parts) == 2 and parts[0] == "simple":  # noqa: PLR2004 - /simple/<project>/
            data = self.index._page(_normalised(parts[1]))  # noqa: SLF001 - its own index
            content_type = "text/html"
        elif len(parts) == 2 and parts[0] == _FILES:  # noqa: PLR2004 - /files/<name>
            data = self.index._file(parts[1])  # noqa: SLF001
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:
        # No range requests: uv then downloads a wheel for its metadata, as from
        # an index without them, and the count says so.
        self.send_error(405)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib's name
        pass
