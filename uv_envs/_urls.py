"""URLs that carry secrets: tell them apart, and keep the secrets out of every message.

An audit database's password may come in the URL itself, from ``PGPASSWORD``,
a ``.pgpass`` file (both read by libpq) or a password file named in the
settings; an index URL may carry ``user:token@``; a wheel relay's URL carries
its token as its first path segment. Whatever the source, only
:func:`redact`-ed text is shown: in errors, logs, events, audit records and
``repr``. It is the one function that does so, for a URL or for any text that
may hold URLs (uv's stderr quotes the relayed URLs it failed to download).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import InvalidInput

POSTGRES_SCHEMES = ("postgresql", "postgres")

# user:password@ in a URL; the password may hold anything but '@' and '/'.
_URL_PASSWORD = re.compile(r"(?P<head>://[^:/@]*):[^@/]*@")
# password=... in a libpq key/value string or a URL query.
_PARAM_PASSWORD = re.compile(r"(?P<head>\bpassword\s*=\s*)('[^']*'|[^\s&]+)", re.IGNORECASE)
# A wheel relay's token: the first path segment of its URL. In a relayed file's
# URL (<relay>/sha256/<hex>/...) any segment before sha256/; in the relay's own
# URL a segment of the length the relay makes its tokens (token_urlsafe(16): 22).
_RELAY_TOKEN = re.compile(
    r"(?P<head>\bhttps?://[^/\s\"'<>]+/)"
    r"(?:[^/\s\"'<>]+(?=/sha256/[0-9a-f]{64})|[A-Za-z0-9_-]{16,}(?=/?(?:[\s\"'<>),;]|$)))"
)


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return urlsplit(url).scheme.lower() in POSTGRES_SCHEMES


def redact(url: str | None) -> str | None:
    """``url`` (or text holding URLs) with every password and relay token replaced by ``***``."""
    if url is None:
        return None
    text = _URL_PASSWORD.sub(r"\g<head>:***@", url)
    text = _RELAY_TOKEN.sub(r"\g<head>***", text)
    return _PARAM_PASSWORD.sub(r"\g<head>***", text)


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` with each secret (and any URL password in it) replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return redact(text) or ""


def read_password_file(path: Path) -> str:
    """The first line of a password file, without its line ending."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidInput(f"cannot read the audit password file {path}: {exc.strerror}") from exc
    password = text.splitlines()[0] if text else ""
    if not password:
        raise InvalidInput(f"the audit password file {path} is empty")
    return password
