"""``uv-envs relay``: run a wheel relay on its own, for machines that install the same locks.

The cluster service runs its own relay; this one is for the other routes (the
``uv_envs`` plugin on a cluster you configure, several hosts sharing an index):
start it on one machine, set ``UV_ENVS_WHEEL_RELAY`` to the URL it prints on
every machine (for Ray, in the environment of ``ray start``), and each file
of a lock is fetched from the index once. It fetches only from the root's
indexes (``UV_ENVS_INDEX_URL`` and the rest; PyPI by default) and the origins
given with ``--allow-origin``. Runs until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import signal
import sys
import threading
from pathlib import Path

from uv_envs._errors import InvalidInput
from uv_envs._relay.limits import RelayLimits
from uv_envs._relay.origins import AllowedOrigins
from uv_envs._relay.server import WheelRelay
from uv_envs._settings import Settings
from uv_envs._store.layout import Layout

#: Seconds between two prunings of the files nothing asked for in a week.
PRUNE_INTERVAL = 3600.0


def add_relay_command(parser: argparse.ArgumentParser) -> None:
    """The options of ``uv-envs relay``."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to serve on, as the other machines reach it (default: 127.0.0.1)",
    )
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="also fetch from this URL's origin (scheme, host, port), e.g. an index's file "
        "host; the root's indexes are always allowed (repeatable)",
    )
    parser.add_argument(
        "--max-kept-bytes",
        type=int,
        default=RelayLimits().max_kept_bytes,
        help="keep at most this many bytes of files; the least recently requested go first",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="serve on an address that is not loopback (anyone with the URL may fetch through it)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="keep the URL's token here (made if missing), so the URL outlives a restart",
    )


def _token(path: Path | None) -> str:
    if path is None:
        return secrets.token_urlsafe(16)
    try:
        if path.exists():
            token = path.read_text(encoding="utf-8").strip()
            if not token.replace("-", "").replace("_", "").isalnum():
                raise InvalidInput(f"{path} does not hold a relay token")
            return token
        token = secrets.token_urlsafe(16)
        path.touch(mode=0o600)
        path.write_text(token + "\n", encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot use the token file {path}: {exc}") from exc
    return token


def _is_loopback(host: str) -> bool:
    # As the servers judge it: a wildcard, a public address or any name but
    # localhost may be reached from elsewhere.
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_relay_host(host: str, *, allow_remote: bool) -> None:
    """InvalidInput for a host that is not loopback, unless ``allow_remote``."""
    if allow_remote or _is_loopback(host):
        return
    msg = (
        f"refusing to serve the relay on {host}: it is not a loopback address. Whoever "
        "holds its URL can fetch through it; pass --allow-remote to mean it"
    )
    raise InvalidInput(msg)


def run_relay(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until interrupted; print the URL to give ``UV_ENVS_WHEEL_RELAY``."""
    check_relay_host(args.host, allow_remote=args.allow_remote)
    try:
        origins = AllowedOrigins.of(settings.index, args.allow_origin)
    except ValueError as exc:
        raise InvalidInput(f"--allow-origin: {exc}") from exc
    relay = WheelRelay(
        Layout(settings.root).relay_dir,
        args.host,
        args.port,
        token=_token(args.token_file),
        origins=origins,
        limits=RelayLimits(max_kept_bytes=args.max_kept_bytes),
    )
    try:
        url = relay.start()
    except OSError as exc:
        raise InvalidInput(f"cannot serve on {args.host}:{args.port}: {exc}") from exc
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(f"uv-envs relay serving at {url}", flush=True)
    print(f"export UV_ENVS_WHEEL_RELAY={url}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(PRUNE_INTERVAL):
            relay.prune()
    finally:
        relay.stop()
        counts = relay.counts()
        print(
            f"uv-envs relay: fetched {counts.fetched_files} files ({counts.fetched_bytes} bytes), "
            f"served {counts.served_files} ({counts.served_bytes} bytes), "
            f"refused {counts.refused}",
            file=sys.stderr,
        )
    return 0
