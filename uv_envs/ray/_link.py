"""Whether the served cluster's head answers: the server's link to the GCS, probed every second.

What Ray 2.60 does to a driver whose head (GCS, no fault tolerance) goes
away, measured on a local head killed and started again on the same port:

* its core worker ends the whole process once the GCS has not answered for
  ``gcs_rpc_server_reconnect_timeout_s`` (60 s; "Failed to connect to GCS
  within 60 seconds ... The program will terminate."), unless the process
  raised it (``RAY_gcs_rpc_server_reconnect_timeout_s``, which ``uv-envs-server``
  sets before it imports Ray);
* meanwhile ``ray.nodes()`` waits without bound, while a key-value call
  with a timeout fails after it ("Timed out while waiting for GCS to become
  available"): so only the latter is a probe;
* a head started again is a new cluster: its GCS refuses this driver's calls
  with ``WrongClusterID`` for good, and ``ray.shutdown()`` ends the process
  (the node's raylet is gone: "Exiting because the Raylet IPC connection
  failed and the local Raylet is dead"), so no ``ray.init`` can follow in
  this process. Only a new process joins the new cluster
  (:attr:`LinkState.REPLACED`; the server re-executes itself).

While the link is not up the service answers creates with
:class:`~uv_envs.RayClusterUnavailable` at once and sends nothing to Ray.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable

from uv_envs._errors import RayClusterUnavailable

from ._published import NAMESPACE, KeyValue

logger = logging.getLogger("uv_envs.ray")

#: Seconds between two probes, and the most one probe waits for the GCS.
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 2.0
#: What a head started again (a new cluster id) answers an old driver.
_NEW_CLUSTER = "WrongClusterID"
_PROBE_KEY = b"uv-envs-probe"


class LinkState(enum.Enum):
    """The server's link to its cluster's GCS."""

    UP = "up"
    #: the GCS does not answer (the head is away)
    DOWN = "down"
    #: a new cluster answers at the address: only a new process can join it
    REPLACED = "replaced"


def classify(error: BaseException | None) -> LinkState:
    """The link's state from a probe's outcome (None: it answered)."""
    if error is None:
        return LinkState.UP
    if _NEW_CLUSTER in str(error):
        return LinkState.REPLACED
    return LinkState.DOWN


class ClusterLink:
    """The state of the link to the GCS at ``address``, from probes through ``kv``.

    ``on_change(old, new)`` is called (from the probing thread) at each change.
    """

    def __init__(
        self, address: str, kv: KeyValue, on_change: Callable[[LinkState, LinkState], None]
    ) -> None:
        self.address = address
        self._kv = kv
        self._on_change = on_change
        self._guard = threading.Lock()
        self._state = LinkState.UP
        self._since = time.time()
        self._error = ""

    @property
    def state(self) -> LinkState:
        """The state at the last probe."""
        with self._guard:
            return self._state

    def unavailable(self) -> str | None:
        """Why the cluster cannot be used now; None while its GCS answers."""
        with self._guard:
            state, since, error = self._state, self._since, self._error
        if state is LinkState.UP:
            return None
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
        if state is LinkState.REPLACED:
            return (
                f"the Ray cluster at {self.address} was replaced at {when} (its head started "
                "again as a new cluster); only a new process can join it (uv-envs-server runs "
                "itself again)"
            )
        return (
            f"the Ray cluster at {self.address} does not answer since {when} (its head is "
            f"away: {error}); retry once it is back"
        )

    def require(self) -> None:
        """Raise :class:`~uv_envs.RayClusterUnavailable` unless the GCS answers."""
        reason = self.unavailable()
        if reason is not None:
            raise RayClusterUnavailable(reason)

    def probe(self) -> LinkState:
        """Ask the GCS once (at most :data:`PROBE_TIMEOUT` seconds); the state it shows."""
        error: BaseException | None = None
        try:
            self._kv.internal_kv_get(_PROBE_KEY, NAMESPACE, timeout=PROBE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure of the GCS is its state
            error = exc
        new = classify(error)
        with self._guard:
            old = self._state
            if new is not old:
                self._state, self._since = new, time.time()
            self._error = "" if error is None else str(error).splitlines()[0][:200]
        if new is not old:
            log = logger.info if new is LinkState.UP else logger.error
            log("the Ray cluster at %s is %s (was %s)", self.address, new.value, old.value)
            self._on_change(old, new)
        return new

    def run(self, stop: threading.Event, interval: float = PROBE_INTERVAL) -> None:
        """Probe every ``interval`` seconds until ``stop`` is set (a thread's target)."""
        while not stop.wait(interval):
            try:
                self.probe()
            except Exception:
                logger.exception("probing the Ray cluster failed; trying again")
