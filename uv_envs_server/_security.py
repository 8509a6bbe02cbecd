"""Who may reach the server: loopback by default, optional TLS and a bearer token.

The service can create environments and install packages, so it is only
reachable from the machine itself unless asked otherwise: binding any address
that is not loopback raises :class:`RemoteAddressNotAllowed` unless the caller
passes ``allow_remote=True`` (``--allow-remote`` on the command line).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import attrs
import grpc

if TYPE_CHECKING:
    from collections.abc import Mapping

#: The environment variable the command line reads the bearer token from.
TOKEN_ENV: Final = "UV_ENVS_SERVER_TOKEN"  # noqa: S105 - a variable's name, not a secret

#: Host names that always mean this machine.
_LOOPBACK_NAMES: Final = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})

#: Tokens travel in an HTTP/2 header: printable ASCII, no spaces, not too long.
MAX_TOKEN_LENGTH: Final = 4096


class RemoteAddressNotAllowed(ValueError):
    """A server was asked to listen on an address other than loopback.

    Pass ``allow_remote=True`` (``--allow-remote``) to mean it; then protect
    the server with TLS and a token.

    .. versionadded:: 0.1.0
    """


def split_host(address: str) -> str:
    """Return the host part of a gRPC listening address (``host:port``, ``[v6]:port``)."""
    if address.startswith("["):
        return address[1:].partition("]")[0]
    if address.count(":") > 1:  # a bare IPv6 literal without a port
        return address
    return address.rpartition(":")[0] if ":" in address else address


def is_loopback(address: str) -> bool:
    """Whether a gRPC listening address reaches only this machine.

    ``127.0.0.0/8``, ``::1``, ``localhost`` and Unix sockets are; wildcards
    (``0.0.0.0``, ``[::]``, an empty host) and every other name are not.
    """
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = split_host(address).strip().lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_address(address: str, *, allow_remote: bool) -> None:
    """Raise :class:`RemoteAddressNotAllowed` for a remote address unless it is allowed."""
    if allow_remote or is_loopback(address):
        return
    msg = (
        f"refusing to listen on {address}: it is not a loopback address. The server "
        "creates environments and installs packages for whoever reaches it; pass "
        "allow_remote=True (--allow-remote) to mean it, with TLS and a token"
    )
    raise RemoteAddressNotAllowed(msg)


def check_token(token: str) -> str:
    """Return ``token`` if it can be sent as a bearer token; raise ValueError otherwise.

    The message never repeats the token.
    """
    if not token:
        raise ValueError("the bearer token is empty")
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"the bearer token is longer than {MAX_TOKEN_LENGTH} characters")
    if not all("!" <= char <= "~" for char in token):
        raise ValueError("the bearer token must be printable ASCII without spaces")
    return token


def read_token(path: Path | None, environ: Mapping[str, str]) -> str | None:
    """The token from ``path`` (surrounding whitespace stripped), else ``$UV_ENVS_SERVER_TOKEN``."""
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"cannot read the token file {path}: {reason}") from None
        return check_token(text.strip())
    value = environ.get(TOKEN_ENV)
    return check_token(value.strip()) if value is not None else None


def _pem(value: str | bytes) -> bytes:
    return value.encode("ascii", "replace") if isinstance(value, str) else value


def server_credentials(cert_pem: str | bytes, key_pem: str | bytes) -> grpc.ServerCredentials:
    """TLS credentials from a PEM certificate chain and its PEM private key.

    Raises ValueError (without quoting either file) when one is not PEM.
    """
    cert, key = _pem(cert_pem), _pem(key_pem)
    if b"-----BEGIN CERTIFICATE-----" not in cert:
        raise ValueError("the TLS certificate is not a PEM certificate")
    if b"PRIVATE KEY-----" not in key:
        raise ValueError("the TLS key is not a PEM private key")
    return grpc.ssl_server_credentials([(key, cert)])


@attrs.frozen
class TlsFiles:
    """A PEM certificate chain and its PEM private key, as files: what a server needs for TLS.

    Both servers take the files (uvicorn loads them by name); the gRPC server
    reads them when it is created. Neither message about them quotes their bytes.

    .. versionadded:: 0.1.0
    """

    certificate_chain: Path = attrs.field(converter=Path)
    private_key: Path = attrs.field(converter=Path)

    def read_pems(self) -> tuple[bytes, bytes]:
        """The certificate chain and the key, as bytes; ValueError when one cannot be read."""
        pems: list[bytes] = []
        for label, path in (("certificate", self.certificate_chain), ("key", self.private_key)):
            try:
                pems.append(path.read_bytes())
            except OSError as exc:
                raise ValueError(f"cannot read the TLS {label} {path}: {exc.strerror}") from None
        return pems[0], pems[1]


def read_tls(cert: Path | None, key: Path | None) -> TlsFiles | None:
    """``--tls-cert`` and ``--tls-key``, both or neither, checked to be readable."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ValueError("--tls-cert and --tls-key go together: give both or neither")
    tls = TlsFiles(cert, key)
    tls.read_pems()  # fail at once on a file that is not there
    return tls


def _bearer(value: str) -> str | None:
    scheme, _, credential = value.strip().partition(" ")
    return credential.strip() if scheme.lower() == "bearer" else None


def bearer_matches(authorizations: Iterable[str], token: bytes) -> bool:
    """Whether one of the ``authorization`` values is ``Bearer <token>``.

    Every value is compared in constant time (:func:`hmac.compare_digest`);
    shared by the gRPC interceptor and the HTTP middleware.
    """
    ok = False
    for value in authorizations:
        credential = _bearer(value)
        if credential is not None:
            ok |= hmac.compare_digest(credential.encode("utf-8", "replace"), token)
    return ok
