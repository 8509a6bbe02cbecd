"""The answers of the maintenance routes: ``GET /v1/health`` and ``GET /v1/cluster``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ClusterNodeJson(BaseModel):
    """One alive node of the served cluster; ``problem`` says why it is not served."""

    node_id: str
    address: str
    problem: str | None
    plugin: bool = Field(
        description="its agent loads uv_envs.ray.ServedEnvPlugin; without, envs reach it only "
        "by the server's reconciling rounds"
    )
    failure_cache_seconds: int | None = Field(
        None, description="seconds its Ray replays a failed setup (docs/ray.md asks for 5)"
    )
    checked_at: float | None = Field(default=None, description="its last check of a copy")
    digest_differs: list[str] = Field(
        default_factory=list, description="env paths whose copy there is not the server's digest"
    )


class RelayJson(BaseModel):
    """What the served cluster's wheel relay fetched from the index and served to nodes."""

    fetched_files: int
    fetched_bytes: int
    served_files: int
    served_bytes: int
    refused: int = Field(description="files whose origin could not give the lock's bytes")


class ClusterJson(BaseModel):
    """``GET /v1/cluster``: the Ray cluster this server serves (``--ray-address``), if any."""

    served: bool
    nodes: list[ClusterNodeJson]
    relay: RelayJson | None = Field(
        default=None, description="the wheel relay's counts; null without one"
    )


class HealthJson(BaseModel):
    """``GET /v1/health``."""

    status: Literal["SERVING"]
    cluster: Literal["SERVING", "NOT_SERVING"] | None = Field(
        default=None,
        description="the served Ray cluster: NOT_SERVING while its head is away (creates then "
        "answer 503); absent when the server serves one host",
    )
    cluster_error: str | None = Field(
        default=None, description="why the cluster is NOT_SERVING, naming it; absent otherwise"
    )
