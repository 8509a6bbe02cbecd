"""Pointing a lock's downloads at a wheel relay, and reading the relay's URLs back.

A relay (``uv_envs.ray``'s cluster service runs one) fetches each file from the
index once and hands the same bytes to every node. uv downloads a locked file
from the URL the lock names and checks it against the lock's hash whoever serves
it, so relaying is a rewrite of those URLs in a copy of the lock that uv syncs
from; the env keeps the lock as it was made. A relayed URL carries the file's
hash, its size as the lock states it (the relay reads no byte past it), its
origin and its file name (uv reads the wheel's tags from it)::

    <relay>/sha256/<hex>/<size>/<origin as urlsafe base64>/<filename>

The form without ``<size>`` (what relays before the size was carried read and
write) is still read: the relay then bounds the file by its configured cap.

A lock with a local source (a path, a ``--find-links`` folder, a local index)
is not relayed at all: its relative paths hold only in the project's own folder.
Pure functions only: no I/O here.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote, urlsplit

import attrs

# uv writes each locked file as an inline table that starts with its URL and hash,
# then (for files from an index) its size.
_LOCKED_FILE = re.compile(
    r'\{ url = "(?P<url>https?://[^"]+)", hash = "sha256:(?P<digest>[0-9a-f]{64})"'
    r"(?P<tail>, size = (?P<size>[0-9]{1,15}))?"
)
# A source read from the project's own disk (a path, a folder, a local index): a
# scratch copy of the project could not find it, so such locks are not relayed.
_LOCAL_SOURCE = re.compile(
    r'source = \{ (?:path|directory|editable) = |source = \{ registry = "(?!https?://)'
)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_SIZE = re.compile(r"[0-9]{1,15}")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*\.(whl|tar\.gz|zip|tar\.bz2|tgz)")
# An origin URL the relay may pass to a socket: printable ASCII, no space, no backslash.
_URL_CHARACTERS = re.compile(r"[\x21-\x5b\x5d-\x7e]{1,2048}")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@attrs.frozen
class RelayedFile:
    """One file a relay was asked for."""

    digest: str  # sha256, hex
    origin: str  # where the index serves it
    filename: str
    size: int | None = None  # bytes, as the lock states it; None: not stated


def relay_url(relay: str, locked: RelayedFile) -> str:
    """Where ``relay`` serves ``locked``."""
    origin = base64.urlsafe_b64encode(locked.origin.encode()).decode().rstrip("=")
    size = "" if locked.size is None else f"/{locked.size}"
    return f"{relay.rstrip('/')}/sha256/{locked.digest}{size}/{origin}/{locked.filename}"


def relayed_lock(uv_lock: str, relay: str) -> str | None:
    """``uv_lock`` with each remote file's URL pointing at ``relay``.

    None when there is nothing to relay: no remote file, or a local source in the lock.
    """
    if _LOCAL_SOURCE.search(uv_lock):
        return None
    relayed = False

    def through_relay(match: re.Match[str]) -> str:
        nonlocal relayed
        origin = match["url"]
        filename = unquote(urlsplit(origin).path.rsplit("/", 1)[-1])
        if not _FILENAME.fullmatch(filename) or origin_of(origin) is None:
            return match[0]  # not a file the relay could read back
        relayed = True
        size = int(match["size"]) if match["size"] is not None else None
        url = relay_url(relay, RelayedFile(match["digest"], origin, filename, size))
        return f'{{ url = "{url}", hash = "sha256:{match["digest"]}"{match["tail"] or ""}'

    text = _LOCKED_FILE.sub(through_relay, uv_lock)
    return text if relayed else None


def lock_origins(uv_lock: str) -> frozenset[str]:
    """The origins (:func:`origin_of`) of every remote file ``uv_lock`` names."""
    found = (origin_of(match["url"]) for match in _LOCKED_FILE.finditer(uv_lock))
    return frozenset(origin for origin in found if origin is not None)


def origin_of(url: str) -> str | None:
    """``scheme://host:port`` of an http(s) URL, port always written; None if malformed.

    Two URLs share an origin exactly when these strings are equal: the relay's
    allow-list compares them. A URL with credentials, a space, a non-ASCII
    character or a bad port is malformed here (a relay never sends such a URL).
    """
    if not _URL_CHARACTERS.fullmatch(url):
        return None
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError:  # "http://[::1/a.whl", "http://h:99999/"
        return None
    host = split.hostname
    if split.scheme not in _DEFAULT_PORTS or not host or "@" in split.netloc:
        return None
    if port is None:
        port = _DEFAULT_PORTS[split.scheme]
    shown = f"[{host}]" if ":" in host else host
    return f"{split.scheme}://{shown}:{port}"


def read_relay_path(path: str) -> RelayedFile | None:
    """The file a relay URL's path (after the relay's own prefix) asks for; None if malformed."""
    parts = path.strip("/").split("/")
    if len(parts) == 5 and _SIZE.fullmatch(parts[2]):  # noqa: PLR2004 - sha256/<hex>/<size>/<origin>/<name>
        size: int | None = int(parts.pop(2))
    elif len(parts) == 4:  # noqa: PLR2004 - sha256/<hex>/<origin>/<name>
        size = None
    else:
        return None
    algorithm, digest, encoded, filename = parts
    if algorithm != "sha256" or not _DIGEST.fullmatch(digest) or not _FILENAME.fullmatch(filename):
        return None
    try:
        origin = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if origin_of(origin) is None:
        return None
    if unquote(urlsplit(origin).path.rsplit("/", 1)[-1]) != filename:
        return None
    return RelayedFile(digest, origin, filename, size)
