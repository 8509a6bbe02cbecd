"""``uv-envs-server``: serve one uv-envs root over gRPC until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import attrs

import uv_envs
from uv_envs import cli_options
from uv_envs_server._grpc.server import create_server

from ._options import ServeOptions
from ._security import TOKEN_ENV, is_loopback, read_tls, read_token

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import FrameType

    from uv_envs import EnvManager
    from uv_envs_server._grpc.server import EnvManagerServer
    from uv_envs_server._http.server import HttpServer
    from uv_envs_server._request_ids import CallCounts

logger = logging.getLogger("uv_envs_server")

#: What the command line leaves unsaid is what ServeOptions says: its defaults, once.
_DEFAULTS = ServeOptions()

#: The request limits: (flag, the ServeOptions field it sets, its type, what it limits).
_LIMITS: tuple[tuple[str, str, type[float], str], ...] = (
    ("--max-message-bytes", "max_message_bytes", int, "largest request accepted"),
    ("--max-packages", "max_packages", int, "packages one request may name"),
    ("--max-watchers", "max_watchers", int, "live event watchers at once, gRPC and HTTP together"),
    ("--max-watchers-per-client", "max_watchers_per_client", int, "the same per client address"),
    (
        "--min-cleanup-idle-hours",
        "min_cleanup_idle_hours",
        float,
        (
            "Cleanup never deletes envs idle less than this, whatever idle_hours says; "
            "0 lets idle_hours=0 delete every env not in use"
        ),
    ),
)

#: Seconds running RPCs get to finish after SIGTERM before they are cancelled.
DEFAULT_GRACE = 30.0
#: Seconds between two reconciliations of a served Ray cluster.
RECONCILE_SECONDS = 5.0
#: What _serve answers when the served cluster was replaced: the process runs itself again.
_RESTART = -1
#: How long Ray lets this server's driver live without its GCS (Ray's default: 60 s):
#: 20 days, longer than any outage of the head worth waiting for.
_RAY_RECONNECT = ("RAY_gcs_rpc_server_reconnect_timeout_s", str(20 * 24 * 3600))


def add_arguments(parser: argparse.ArgumentParser, *, settings_options: bool = True) -> None:
    """Declare the server's options on ``parser``, for :func:`run`.

    ``uv-envs serve`` calls it with ``settings_options=False``: its parser
    declares ``--root``, ``--lock-timeout`` and the index options already
    (:mod:`uv_envs.cli_options`), before and after the subcommand.
    """
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1); other than loopback needs --allow-remote",
    )
    parser.add_argument("--port", type=int, default=50051, help="port; 0 picks a free one")
    parser.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="also serve the HTTP/JSON API and status page on this port of --host "
        "(off unless given; 0 picks a free one; needs the [http] extra)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=_DEFAULTS.max_workers,
        help="threads answering RPCs (default: %(default)s)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE,
        help=f"seconds running operations get to finish on shutdown (default: {DEFAULT_GRACE:g})",
    )
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    cluster = parser.add_argument_group("serving a Ray cluster (needs the [ray] extra)")
    cluster.add_argument(
        "--ray-address",
        default=None,
        help="install every env on every node of this Ray cluster (auto or HOST:PORT of its "
        "GCS) under the same root path, so the env_path answered works on any node "
        "(default: $UV_ENVS_RAY_ADDRESS; off when unset; docs/ray.md)",
    )
    cluster.add_argument(
        "--ray-reconcile-seconds",
        type=float,
        default=RECONCILE_SECONDS,
        help="seconds between two checks of the cluster for nodes that joined or lost an env "
        f"(default: {RECONCILE_SECONDS:g})",
    )
    cluster.add_argument(
        "--no-wheel-relay",
        dest="wheel_relay",
        action="store_false",
        help="let every node download the lock's files from the index itself, instead of "
        "through the server's relay, which fetches each file once for the whole cluster",
    )
    if settings_options:
        settings = parser.add_argument_group(
            "environments, package index and audit store (default: the UV_ENVS_* variables)"
        )
        cli_options.add_settings_options(settings)
    guard = parser.add_argument_group("access")
    guard.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host that is not loopback (then use --tls-* and --token-file)",
    )
    guard.add_argument("--tls-cert", type=Path, help="PEM certificate chain: serve over TLS")
    guard.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    guard.add_argument(
        "--token-file",
        type=Path,
        help=f"require 'authorization: Bearer <token>' with this file's token "
        f"(default: ${TOKEN_ENV} if set)",
    )
    for flag, field, kind, limits in _LIMITS:
        default = getattr(_DEFAULTS, field)
        shown = format(default, "g" if kind is float else "d")
        guard.add_argument(flag, type=kind, default=default, help=f"{limits} (default: {shown})")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uv-envs-server",
        description="Serve uv-envs environments over gRPC (envmanager.EnvManagerService).",
        epilog="Other settings come from UV_ENVS_* variables (UV_ENVS_FIND_LINKS, "
        "UV_ENVS_INDEX_URL, UV_ENVS_NO_INDEX, UV_ENVS_OFFLINE ...).",
    )
    parser.add_argument(
        "--version", action="version", version=f"uv-envs-server {uv_envs.__version__}"
    )
    add_arguments(parser)
    return parser


def _options(args: argparse.Namespace) -> ServeOptions:
    """The options both servers take, from the command line (the gRPC port; no TLS, no token)."""
    return ServeOptions(
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        max_workers=args.workers,
        **{field: getattr(args, field) for _, field, _, _ in _LIMITS},
    )


def _manager(settings: uv_envs.Settings, args: argparse.Namespace) -> uv_envs.EnvManager:
    """The root's manager; with a Ray address, one that installs every env on every node."""
    address = args.ray_address or settings.ray_address
    if not address:
        return uv_envs.EnvManager(settings)
    # Set before Ray is imported: a value set after ``import ray`` shows in Ray's message
    # but is not what it waits (measured: the process still ended 60 s after the head).
    os.environ.setdefault(*_RAY_RECONNECT)
    from uv_envs.ray import ClusterEnvManager  # noqa: PLC0415 - needs the [ray] extra

    logger.info("serving the Ray cluster at %s", address)
    handler = signal.getsignal(signal.SIGTERM)
    manager = ClusterEnvManager(
        settings,
        address=address,
        reconcile_interval=args.ray_reconcile_seconds,
        wheel_relay=args.wheel_relay,
    )
    # ray.init sets a SIGTERM handler that exits at once (code 15): restore the drain.
    signal.signal(signal.SIGTERM, handler)
    return manager


def _http_server(
    manager: uv_envs.EnvManager, options: ServeOptions, grpc_calls: CallCounts
) -> HttpServer:
    """The HTTP server beside gRPC (``--http-port``), with the same guards; counts its calls."""
    from uv_envs_server._http.server import create_http_server  # noqa: PLC0415 - needs the [http] extra

    return create_http_server(manager, options, grpc_calls=grpc_calls)


def _hint(error: BaseException) -> str:
    """What to do about a start-up error, when there is something to say."""
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return "; another process listens there: stop it, or pick another port (0: any free one)"
    if "root" in getattr(error, "fields", ()):
        return " (--root)"
    return ""


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the server until SIGTERM or SIGINT; returns 0 after a clean shutdown, 2 on bad setup.

    ``environ`` (``os.environ`` by default) is where ``$UV_ENVS_SERVER_TOKEN`` is read.
    """
    return run(_parser().parse_args(argv), environ)


def run(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> int:
    """Serve with options parsed by a parser that :func:`add_arguments` built; as :func:`main`."""
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        del frame
        logger.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    # Installed first, so a signal during start-up (recovery can take a while) is a clean stop.
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        code = _serve(args, stop, os.environ if environ is None else environ)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == _RESTART:
        _run_again(args)
    return code


def _run_again(args: argparse.Namespace) -> NoReturn:
    """Run this command again in this process (the same pid), on the ports it listened on.

    The served cluster's head came back as a new cluster, which no process that
    was a driver of the old one can join (``uv_envs/ray/_link.py``). The new run
    recovers, joins, publishes every env and reconciles every node.
    """
    argv = [sys.executable, *sys.orig_argv[1:], "--port", str(args.port)]
    if args.http_port is not None:
        argv += ["--http-port", str(args.http_port)]
    logger.warning("joining the new Ray cluster: running %s again", " ".join(argv[1:]))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - this very command, again


def _serve(args: argparse.Namespace, stop: threading.Event, environ: Mapping[str, str]) -> int:
    # Whatever way the server ends, the manager's audit connections are closed.
    with contextlib.ExitStack() as closing:
        return _serve_until_stopped(args, stop, environ, closing)


def _serve_until_stopped(
    args: argparse.Namespace,
    stop: threading.Event,
    environ: Mapping[str, str],
    closing: contextlib.ExitStack,
) -> int:
    try:
        # The cheap checks first: a refused address or a bad token file fails at once.
        options = _options(args)
        tls = read_tls(args.tls_cert, args.tls_key)
        token = read_token(args.token_file, environ)
        options = attrs.evolve(options, tls=tls, token=token)
        settings = cli_options.settings_from_options(args)
        manager = _manager(settings, args)
        closing.callback(manager.close)
        recovering = time.monotonic()
        repaired = manager.recover()
        if repaired:
            logger.info("repaired after a crash: %s", ", ".join(map(str, repaired)))
        # How long a restart after a crash kept the doors shut, for operators and the trial.
        logger.info(
            "start-up recovery took %.2f s (%d envs repaired)",
            time.monotonic() - recovering,
            len(repaired),
        )
        server, port = create_server(manager, options)
        http = None
        if args.http_port is not None:
            http = _http_server(manager, attrs.evolve(options, port=args.http_port), server.calls)
    except (OSError, ValueError, ImportError, uv_envs.UvEnvsError) as exc:
        logger.error("%s%s", exc, _hint(exc))  # noqa: TRY400 - a clear message, no traceback
        return 2
    address = options.address
    if not is_loopback(address) and (tls is None or token is None):
        logger.warning(
            "listening on %s without %s: anyone who reaches it can install packages",
            address,
            " and ".join(n for n, v in (("TLS", tls), ("a token", token)) if v is None),
        )

    server.start()
    args.port = port  # a run again (_run_again) listens where this one did
    # The one line scripts and tests read to learn the port (with --port 0).
    listening = attrs.evolve(options, port=port).address
    print(f"uv-envs-server listening on {listening}", flush=True)  # noqa: T201
    if http is not None:
        try:
            http.start()
        except OSError as exc:
            logger.error("%s%s", exc, _hint(exc))  # noqa: TRY400 - a clear message, no traceback
            server.stop(None).wait()
            return 2
        print(f"uv-envs-server HTTP listening on {http.url}", flush=True)  # noqa: T201
        args.http_port = http.port
    logger.info(
        "root %s, %d workers, TLS %s, token %s",
        settings.root,
        args.workers,
        "on" if tls is not None else "off",
        "required" if token is not None else "not required",
    )

    restart = _until_stopped(stop, server, manager)
    stopped = server.stop(args.grace)
    if http is not None:
        http.stop(args.grace)
    stopped.wait()
    # Handlers cancelled at the end of the grace period may still be running uv.
    drained = threading.Thread(target=server.executor.shutdown, daemon=True)
    drained.start()
    drained.join(timeout=5.0)
    if drained.is_alive():
        logger.warning("operations still running after the grace period; the next start recovers")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    logger.info("stopped")
    return _RESTART if restart else 0


def _until_stopped(stop: threading.Event, server: EnvManagerServer, manager: EnvManager) -> bool:
    """Serve until ``stop`` is set; True when the served cluster needs a new process first."""
    while not stop.wait(timeout=0.5):
        if server.health.follow(manager.cluster):
            return True
    return False
