"""Audit database URLs: tell them apart, and keep their passwords out of every message.

A password may come in the URL itself, from ``PGPASSWORD``, a ``.pgpass`` file
(both read by libpq) or a password file named in the settings. Whatever the
source, only :func:`redact`-ed URLs are shown: in errors, logs and ``repr``.
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


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database."""
    return urlsplit(url).scheme.lower() in POSTGRES_SCHEMES


def redact(url: str | None) -> str | None:
    """``url`` with any password replaced by ``***``."""
    if url is None:
        return None
    return _PARAM_PASSWORD.sub(r"\g<head>***", _URL_PASSWORD.sub(r"\g<head>:***@", url))


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
