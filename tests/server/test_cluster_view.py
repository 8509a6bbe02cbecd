"""Both servers show a served cluster through the manager's typed ``cluster``, never by shape.

A manager whose ``cluster`` is a :class:`uv_envs.ClusterView` (what
``uv_envs.ray.ClusterEnvManager`` sets) is served as a cluster; one whose
``cluster`` is None (any other) serves one host: the answers say so.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs
import httpx

import uv_envs

if TYPE_CHECKING:
    from .conftest import HttpServe

BODY = {"workflow_id": "wf", "node_id": "node", "version_id": "v1", "packages": ["alpha"]}


@attrs.frozen
class _Row:
    row: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.row)


class FakeCluster:
    """Two nodes; the second lacks every env and has no plugin."""

    def nodes(self, key: uv_envs.EnvKey) -> Sequence[_Row]:
        del key
        return (
            _Row({"node_id": "a", "address": "10.0.0.1", "state": "present", "error": None}),
            _Row({"node_id": "b", "address": "10.0.0.2", "state": "missing", "error": None}),
        )

    def cluster_nodes(self) -> Sequence[_Row]:
        return (
            _Row({"node_id": "a", "address": "10.0.0.1", "problem": None, "plugin": True}),
            _Row({"node_id": "b", "address": "10.0.0.2", "problem": None, "plugin": False}),
        )

    def relay_counts(self) -> _Row | None:
        counts = {"fetched_files": 2, "fetched_bytes": 10, "served_files": 4, "served_bytes": 20}
        return _Row({**counts, "refused": 0})

    def unavailable(self) -> str | None:
        return None

    def needs_restart(self) -> bool:
        return False


def test_a_manager_with_a_cluster_is_served_as_one(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    cluster: uv_envs.ClusterView = FakeCluster()
    fake_manager.cluster = cluster
    server = http_serve(fake_manager)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        shown = http.get("/v1/cluster").json()
        assert shown["served"] is True
        assert [(n["node_id"], n["plugin"]) for n in shown["nodes"]] == [("a", True), ("b", False)]
        assert shown["relay"]["served_files"] == 4
        made = http.post("/v1/envs", json=BODY)
        assert made.status_code == 201, made.text
        assert [(n["node_id"], n["state"]) for n in made.json()["nodes"]] == [
            ("a", "present"),
            ("b", "missing"),
        ]


class AwayCluster(FakeCluster):
    """Its head does not answer."""

    def unavailable(self) -> str | None:
        return "the Ray cluster at 10.0.0.1:6379 does not answer"


def test_health_shows_the_cluster_apart(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    server = http_serve(fake_manager)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        alone = http.get("/v1/health").json()
        fake_manager.cluster = FakeCluster()
        serving = http.get("/v1/health").json()
        fake_manager.cluster = AwayCluster()
        away = http.get("/v1/health")
    assert alone == {"status": "SERVING"}
    assert serving == {"status": "SERVING", "cluster": "SERVING"}
    assert away.status_code == 200  # the server serves; only its cluster does not
    assert away.json() == {
        "status": "SERVING",
        "cluster": "NOT_SERVING",
        "cluster_error": "the Ray cluster at 10.0.0.1:6379 does not answer",
    }


def test_a_manager_without_a_cluster_serves_one_host(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    assert fake_manager.cluster is None
    server = http_serve(fake_manager)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/v1/cluster").json() == {"served": False, "nodes": [], "relay": None}
        made = http.post("/v1/envs", json=BODY)
        assert made.status_code == 201, made.text
        assert made.json()["nodes"] is None


class FailedCluster(FakeCluster):
    """The second node's install failed; the server tries it again at a set time."""

    def nodes(self, key: uv_envs.EnvKey) -> Sequence[_Row]:
        del key
        failed = {
            "node_id": "b",
            "address": "10.0.0.2",
            "state": "failed",
            "error": "UvError: No space left on device",
            "next_retry": "2026-12-08T00:00:05+00:00",
        }
        return (
            _Row({"node_id": "a", "address": "10.0.0.1", "state": "present", "error": None}),
            _Row(failed),
        )


def test_a_failed_copy_shows_why_and_when_it_is_tried_again(
    http_serve: HttpServe, fake_manager: uv_envs.EnvManager
) -> None:
    fake_manager.cluster = FailedCluster()
    server = http_serve(fake_manager)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        made = http.post("/v1/envs", json=BODY)
        assert made.status_code == 201, made.text
        failed = made.json()["nodes"][1]
        assert (failed["state"], failed["next_retry"]) == ("failed", "2026-12-08T00:00:05+00:00")
        page = http.get("/").text
    assert "No space left on device" in page
    assert "tried again at 2026-12-08T00:00:05+00:00" in page
