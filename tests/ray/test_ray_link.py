"""The link's states from probes through a fake key-value store, as Ray's client answers them."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from uv_envs import RayClusterUnavailable
from uv_envs.ray._fanout import Fanout
from uv_envs.ray._link import ClusterLink, LinkState, classify
from uv_envs.ray._published import Registry

from .test_ray_published import DictKeyValue, record


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


def test_changes_made_while_the_head_is_away_reach_it_once_back() -> None:
    kv = DictKeyValue()
    fanout = Fanout("/srv/uv/envs", Registry(kv), "3.11")
    deleted = record("/srv/uv/envs/wf/n/old")
    fanout.publish(deleted)
    # The head goes away (a head with GCS fault tolerance keeps its store): an env is
    # changed, another deleted, and the cluster is told nothing.
    changed = record("/srv/uv/envs/wf/n/v1")
    fanout.keep(changed)
    fanout.drop(deleted.key, deleted.env_path)
    assert Registry(kv).lookup(changed.env_path) is None
    assert Registry(kv).lookup(deleted.env_path) == deleted

    fanout.republish()  # the head is back

    assert Registry(kv).lookup(changed.env_path) == changed
    assert Registry(kv).lookup(deleted.env_path) is None
