"""``uv-envs watch``: follow a uv-envs server's events live, over gRPC or HTTP.

Like ``serve`` it needs no root of its own: it talks to a running server
(``host:port`` for gRPC, ``http(s)://host:port`` for HTTP) and prints one line
per event, or with ``--json`` one JSON object per line (JSON Lines), until
interrupted or ``--count`` events have arrived.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from uv_envs._errors import InvalidInput

from .boundary import Refused

if TYPE_CHECKING:
    from collections.abc import Generator

    from uv_envs._events.records import StreamEvent

#: The server watched by default, and the variables that name it and its token.
DEFAULT_SERVER: Final = "127.0.0.1:50051"
SERVER_ENV: Final = "UV_ENVS_SERVER"
TOKEN_ENV: Final = "UV_ENVS_SERVER_TOKEN"  # noqa: S105 - a variable's name, not a secret


def add_watch_command(parser: argparse.ArgumentParser) -> None:
    """The options of ``uv-envs watch``."""
    parser.add_argument(
        "--server",
        default=os.environ.get(SERVER_ENV, DEFAULT_SERVER),
        help=f"host:port (gRPC) or http(s)://host:port (HTTP); ${SERVER_ENV}, "
        f"else {DEFAULT_SERVER}",
    )
    parser.add_argument("--workflow", help="only events of this workflow")
    parser.add_argument("--node", help="only events of this node")
    parser.add_argument(
        "--name", action="append", default=[], help="only events of this name (repeatable)"
    )
    parser.add_argument("--operation", help="only events of this operation (a request id)")
    parser.add_argument("--after", type=int, help="first replay the events numbered after this")
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument(
        "--token-file", type=Path, help=f"the server's bearer token (else ${TOKEN_ENV})"
    )


def _token(path: Path | None) -> str | None:
    if path is None:
        value = os.environ.get(TOKEN_ENV)
        return value.strip() if value else None
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the token file {path}") from exc


def _events(args: argparse.Namespace) -> Generator[StreamEvent]:
    try:
        import uv_envs_server  # noqa: PLC0415 - only watch needs the server extra
    except ImportError as exc:
        raise InvalidInput("uv-envs watch needs the server extra: uv-envs[server]") from exc
    token = _token(args.token_file)
    server: str = args.server
    # Both clients keep one contract (uv_envs_server.RemoteEnvManager): only the wire differs.
    over_http = server.startswith(("http://", "https://"))
    client_type = uv_envs_server.HttpEnvClient if over_http else uv_envs_server.EnvManagerClient
    try:
        with client_type(server, token=token) as client:
            yield from client.watch(
                workflow_id=args.workflow,
                node_id=args.node,
                names=args.name,
                operation_id=args.operation,
                after=args.after,
            )
    except uv_envs_server.RemoteError as exc:
        raise _not_reached_grpc(server, exc) from exc
    except Exception as exc:
        refused = _not_reached_http(server, exc) if over_http else None
        if refused is None:
            raise
        raise refused from exc


def _not_reached_grpc(server: str, error: Exception) -> Exception:
    """A gRPC failure to reach ``server``, with what to do; other errors as they are."""
    text = str(error)
    if "http1.x server" in text or "Failed parsing HTTP/2" in text:
        return Refused(
            f"{server} answers HTTP/1.1, not gRPC: for the HTTP API give --server http://{server}"
        )
    if text.startswith("UNAVAILABLE"):
        return Refused(
            f"cannot reach a uv-envs gRPC server at {server}: {text.splitlines()[0]}; "
            f"is uv-envs-server running there? (--server, ${SERVER_ENV})"
        )
    return error


def _not_reached_http(server: str, error: Exception) -> Refused | None:
    """An httpx transport failure as a one-line refusal; None for any other error."""
    import httpx  # noqa: PLC0415 - present whenever the HTTP client is

    if isinstance(error, httpx.RemoteProtocolError):
        return Refused(
            f"{server} does not answer HTTP/1.1; if it is the gRPC port, give --server "
            "without http:// (host:port)"
        )
    if isinstance(error, httpx.TransportError):
        return Refused(
            f"cannot reach a uv-envs HTTP server at {server}: {error}; is uv-envs-server "
            f"running there with --http-port? (--server, ${SERVER_ENV})"
        )
    return None


def describe(event: StreamEvent) -> str:
    """One event as one line of text."""
    key = "-" if event.key is None else str(event.key)
    parts = [f"#{event.sequence}" if event.sequence else "!", event.name, key]
    if event.phase is not None:
        parts.append(event.phase.value)
    parts += [f"{name}={count}" for name, count in sorted(event.counts.items())]
    if event.details.get("error"):
        parts.append(f"error={str(event.details['error']).splitlines()[0]}")
    if event.operation_id:
        parts.append(f"[{event.operation_id}]")
    return " ".join(parts)


def run_watch(args: argparse.Namespace) -> int:
    """Print the server's events until interrupted, ``--count`` is reached or it is cut off."""
    if args.count is not None and args.count < 1:
        raise InvalidInput("--count must be at least 1")
    seen = 0
    events = _events(args)
    try:
        for event in events:
            line = json.dumps(event.to_dict(), sort_keys=True) if args.json else describe(event)
            print(line, flush=True)
            seen += not event.is_notice
            if event.ends_stream:
                return 1
            if args.count is not None and seen >= args.count:
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        events.close()  # ends the call, which frees the server's place
    print("uv-envs: the server ended the stream", file=sys.stderr)
    return 0
