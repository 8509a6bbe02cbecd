"""Serving a Ray cluster (``--ray-address``): its manager, its health, a run again for a new head.

What Ray does to this server when its head goes away is in
``uv_envs/ray/_link.py``; this module is the server's side of it: the process
outlives the head (health ``uv_envs.RayCluster`` NOT_SERVING, creates
UNAVAILABLE), and when the head comes back as a new cluster, which no process
that was a driver of the old one can join, the command runs again in this
process, on the same ports.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, NoReturn

from grpc_health.v1 import health_pb2

from uv_envs_server._grpc.health import CLUSTER_SERVICE, HealthServicer

if TYPE_CHECKING:
    import argparse

    import uv_envs

logger = logging.getLogger("uv_envs_server")

#: How long Ray lets this server's driver live without its GCS (Ray's default: 60 s):
#: 20 days, longer than any outage of the head worth waiting for.
RAY_RECONNECT = ("RAY_gcs_rpc_server_reconnect_timeout_s", str(20 * 24 * 3600))


def serve_cluster(
    settings: uv_envs.Settings, args: argparse.Namespace, address: str
) -> uv_envs.EnvManager:
    """The manager that installs every env on every node of the cluster at ``address``."""
    # Set before Ray is imported: a value set after ``import ray`` shows in Ray's message
    # but is not what it waits (measured: the process still ended 60 s after the head).
    os.environ.setdefault(*RAY_RECONNECT)
    from uv_envs.ray import ClusterEnvManager  # noqa: PLC0415 - needs the [ray] extra

    logger.info("serving the Ray cluster at %s", address)
    handler = signal.getsignal(signal.SIGTERM)
    manager = ClusterEnvManager(
        settings,
        address=address,
        reconcile_interval=args.ray_reconcile_seconds,
        wheel_relay=args.wheel_relay,
    )
    # ray.init puts a SIGTERM handler of its own, which exits at once (code 15): SIGTERM
    # stops this server as any other, after the grace period.
    signal.signal(signal.SIGTERM, handler)
    return manager


def serve_until_replaced(
    stop: threading.Event, manager: uv_envs.EnvManager, health: HealthServicer
) -> bool:
    """Serve until ``stop`` is set, or (True) until only a new process can join the cluster."""
    while not stop.wait(timeout=0.5):
        if follow_cluster(manager, health):
            return True
    return False


def follow_cluster(manager: uv_envs.EnvManager, health: HealthServicer) -> bool:
    """Show the served cluster's state in health; True when only a new process can join it."""
    cluster = manager.cluster
    if cluster is None:
        return False
    reason = cluster.unavailable()
    serving = health_pb2.HealthCheckResponse.SERVING
    status = serving if reason is None else health_pb2.HealthCheckResponse.NOT_SERVING
    if health.update(CLUSTER_SERVICE, status) and reason is not None:
        logger.error("%s: creates answer UNAVAILABLE meanwhile", reason)
    return cluster.needs_restart()


def run_again(args: argparse.Namespace) -> NoReturn:
    """Run this command again in this process (the same pid), on the ports it listened on.

    The new run recovers, joins the new cluster, publishes every env and
    reconciles every node, as a restart does.
    """
    argv = [sys.executable, *sys.orig_argv[1:], "--port", str(args.port)]
    if args.http_port is not None:
        argv += ["--http-port", str(args.http_port)]
    logger.warning("joining the new Ray cluster: running %s again", " ".join(argv[1:]))
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)  # noqa: S606 - this very command, again
