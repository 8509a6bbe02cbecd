"""Pointing a lock's downloads at a wheel relay, and reading the relay's URLs back.

A relay (``uv_envs.ray``'s cluster service runs one) fetches each file from the
index once and hands the same bytes to every node. uv downloads a locked file
from the URL the lock names and checks it against the lock's hash whoever serves
it, so relaying is a rewrite of those URLs in a copy of the lock that uv syncs
from; the env keeps the lock as it was made. A relayed URL carries the file's
hash, its origin and its file name (uv reads the wheel's tags from it)::

    <relay>/sha256/<hex>/<origin as urlsafe base64>/<filename>

A lock with a local source (a path, a ``--find-links`` folder, a local index)
is not relayed at all: its relative paths hold only in the project's own folder.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote, urlsplit

import attrs

# uv writes each locked file as an inline table that starts with its URL and hash.
_LOCKED_FILE = re.compile(
    r'\{ url = "(?P<url>https?://[^"]+)", hash = "sha256:(?P<digest>[0-9a-f]{64})"'
)
# A source read from the project's own disk (a path, a folder, a local index): a
# scratch copy of the project could not find it, so such locks are not relayed.
_LOCAL_SOURCE = re.compile(
    r'source = \{ (?:path|directory|editable) = |source = \{ registry = "(?!https?://)'
)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+!-]*\.(whl|tar\.gz|zip|tar\.bz2|tgz)")


@attrs.frozen
class RelayedFile:
    """One file a relay was asked for."""

    digest: str  # sha256, hex
    origin: str  # where the index serves it
    filename: str


def relay_url(relay: str, locked: RelayedFile) -> str:
    """Where ``relay`` serves ``locked``."""
    origin = base64.urlsafe_b64encode(locked.origin.encode()).decode().rstrip("=")
    return f"{relay.rstrip('/')}/sha256/{locked.digest}/{origin}/{locked.filename}"


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
        if not _FILENAME.fullmatch(filename):
            return match[0]  # not a distribution file name uv could read back
        relayed = True
        url = relay_url(relay, RelayedFile(match["digest"], origin, filename))
        return f'{{ url = "{url}", hash = "sha256:{match["digest"]}"'

    text = _LOCKED_FILE.sub(through_relay, uv_lock)
    return text if relayed else None


def read_relay_path(path: str) -> RelayedFile | None:
    """The file a relay URL's path (after the relay's own prefix) asks for; None if malformed."""
    parts = path.strip("/").split("/")
    if len(parts) != 4 or parts[0] != "sha256":  # noqa: PLR2004 - sha256/<hex>/<origin>/<name>
        return None
    _, digest, encoded, filename = parts
    if not _DIGEST.fullmatch(digest) or not _FILENAME.fullmatch(filename):
        return None
    try:
        origin = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    split = urlsplit(origin)
    if split.scheme not in {"http", "https"} or not split.netloc:
        return None
    if unquote(split.path.rsplit("/", 1)[-1]) != filename:
        return None
    return RelayedFile(digest, origin, filename)
