"""The link's states from probes through a fake key-value store, as Ray's client answers them."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from uv_envs import RayClusterUnavailable
from uv_envs.ray._link import ClusterLink, LinkState, classify


class Gcs:
    """Answers the probe, or raises what Ray's client raised (measured, Ray 2.60)."""

    def __init__(self) -> None:
        self.error: Exception | None = None

    def internal_kv_get(
        self, key: bytes, namespace: bytes | None, timeout: float | None = None
    ) -> bytes | None:
        del key, namespace, timeout
        if self.error is not None:
            raise self.error
        return None


AWAY = RuntimeError("Timed out while waiting for GCS to become available.")
NEW = RuntimeError("RPC error: WrongClusterID: Perhaps the client is accessing GCS after ...")


def test_probes_follow_the_head_away_and_back_as_a_new_cluster() -> None:
    gcs = Gcs()
    changes: list[tuple[LinkState, LinkState]] = []
    link = ClusterLink("10.0.0.1:6379", gcs, lambda old, new: changes.append((old, new)))  # type: ignore[arg-type]

    assert link.probe() is LinkState.UP
    link.require()
    gcs.error = AWAY
    assert link.probe() is LinkState.DOWN
    assert link.probe() is LinkState.DOWN  # a change is told once
    with pytest.raises(RayClusterUnavailable, match=r"10\.0\.0\.1:6379 does not answer"):
        link.require()
    gcs.error = NEW
    assert link.probe() is LinkState.REPLACED
    assert "was replaced" in (link.unavailable() or "")
    assert changes == [(LinkState.UP, LinkState.DOWN), (LinkState.DOWN, LinkState.REPLACED)]


def test_only_a_wrong_cluster_id_means_a_new_cluster() -> None:
    assert classify(None) is LinkState.UP
    assert classify(AWAY) is LinkState.DOWN
    assert classify(NEW) is LinkState.REPLACED
    assert classify(PermissionError("token refused")) is LinkState.DOWN
