"""A Python client of the HTTP API, on httpx: the :class:`RemoteEnvManager` contract.

Its methods answer ``uv_envs`` models, as the gRPC client's do. A problem
body is raised as the core exception it names
(``except uv_envs.EnvironmentNotFound`` works against the local API, the gRPC
client and this one alike); a failure no core class describes is an
:class:`HttpRemoteError`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Unpack

import attrs
import httpx

import uv_envs
from uv_envs_server._remote import EventFilters, PageQuery, RemoteClient

from .calls import DEFAULT_TIMEOUT, HttpCalls, HttpRemoteError, error_of, spec_body
from .sse import decode

if TYPE_CHECKING:
    from collections.abc import Generator, Mapping

__all__ = ["DEFAULT_TIMEOUT", "HttpEnvClient", "HttpRemoteError"]

_RECORD_FIELDS = frozenset(attrs.fields_dict(uv_envs.OperationRecord))


def environment_of(env: Mapping[str, Any]) -> uv_envs.Environment:
    """The :class:`uv_envs.Environment` an env's JSON describes."""
    spec = env["spec"]
    # The JSON has no Ray link, only its fruit: a null ray_runtime_env says the
    # env cannot run under the cluster's Ray, which ray_runtime_env() then raises.
    unusable = env.get("ray_runtime_env") is None
    error = "the server's Ray runs on another Python minor than this env"
    return uv_envs.Environment(
        key=uv_envs.EnvKey(env["workflow_id"], env["node_id"], env["version_id"]),
        env_path=Path(env["env_path"]),
        status=uv_envs.EnvStatus(env["status"]),
        spec=uv_envs.EnvSpec(tuple(spec["packages"]), spec["python"], spec["requirements_text"]),
        spec_hash=env["spec_hash"],
        python_version=env["python_version"],
        generation=env["generation"],
        created_at=env["created_at"],
        updated_at=env["updated_at"],
        error=env["error"],
        digest=env.get("digest", ""),
        ray=uv_envs.RayLink("", "", "", error=error) if unusable else None,
    )


#: The method and path (after the env's) of each change.
_CHANGES = {
    "add": ("POST", "/deps"),
    "update": ("PATCH", "/deps"),
    "remove": ("DELETE", "/deps"),
    "sync": ("POST", "/sync"),
}


class HttpEnvClient(HttpCalls, RemoteClient):
    """Talks to a uv-envs HTTP server (``uv-envs-server --http-port N``).

    Its methods are the :class:`~uv_envs_server.RemoteEnvManager` contract
    (``ensure``, ``get``, ``add`` ...), answering ``uv_envs`` models as
    :class:`~uv_envs_server.EnvManagerClient` does, plus :meth:`health`. The
    API's JSON itself (another export format, ``verify``, ``cleanup``, the
    list of envs) is a call on :attr:`http`, an ``httpx.Client`` on the
    server's base URL that sends the token.

    Args:
        base_url: for example ``http://127.0.0.1:8080``.
        token: the server's bearer token, if it requires one.
        timeout: seconds per call (default 600: creates install packages).
        verify: TLS verification, as httpx takes it (True, a CA bundle path, an SSLContext).
        client: use this httpx client instead of opening one.

    Usable as a context manager; :meth:`close` closes the connection pool.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Implements :class:`~uv_envs_server.RemoteEnvManager`, and only it: the
       wire-level methods (``create_env``, ``get_env``, ``verify_env`` ...)
       are gone, and :meth:`health` answers the status name.

    """

    def health(self) -> str:
        """``"SERVING"`` when the server answers (``GET /v1/health``)."""
        return str(self._call("GET", "/v1/health")["status"])

    def _ensure(
        self, key: uv_envs.EnvKey, packages: list[str], text: str | None, python: str | None
    ) -> uv_envs.Environment:
        body = spec_body(packages, python, text)
        return environment_of(self._call("PUT", self._env(key), json=body))

    def get(self, key: uv_envs.EnvKey) -> uv_envs.Environment:
        """The env; raises ``EnvironmentNotFound`` when there is none."""
        env = self._call("GET", self._env(key))["environment"]
        if env is None:  # the server answers 404 then; this is for an older one
            raise uv_envs.EnvironmentNotFound(f"no environment {key}")
        return environment_of(env)

    def delete(self, key: uv_envs.EnvKey, *, timeout: float | None = None) -> uv_envs.DeleteResult:
        """Delete the env; past ``timeout`` seconds, ``EnvironmentBusy``."""
        wait = httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        try:
            answer = self._call("DELETE", self._env(key), timeout=wait)
        except httpx.TimeoutException as exc:
            msg = f"environment {key} was not deleted within {timeout} seconds"
            raise uv_envs.EnvironmentBusy(msg) from exc
        return uv_envs.DeleteResult(
            key,
            uv_envs.DeleteStatus(answer["status"]),
            held_by=tuple(answer.get("held_by", ())),
            leases=answer.get("leases", 0),
            held_on=tuple(answer.get("held_on", ())),
        )

    def dependencies(self, key: uv_envs.EnvKey) -> uv_envs.Dependencies:
        """Declared dependencies and the versions uv.lock pins."""
        answer = self._call("GET", self._env(key) + "/deps")
        return uv_envs.Dependencies(key, tuple(answer["declared"]), dict(answer["locked"]))

    def _change(
        self, key: uv_envs.EnvKey, operation: str, packages: list[str], text: str | None = None
    ) -> uv_envs.OperationResult:
        method, tail = _CHANGES[operation]
        body: dict[str, Any] | None = None if operation == "sync" else {"packages": packages}
        if operation == "add":
            body = {"packages": packages, "requirements_text": text}
        answer = self._call(method, self._env(key) + tail, json=body)
        return uv_envs.OperationResult(
            environment_of(answer["environment"]),
            answer["operation"],
            stdout=answer["stdout"],
            stderr=answer["stderr"],
            exit_code=answer["exit_code"],
            duration_ms=answer["duration_ms"],
            changed=answer.get("changed", True),
        )

    def export(self, key: uv_envs.EnvKey) -> uv_envs.Export:
        """The env's ``pyproject.toml`` and ``uv.lock``."""
        files = self._call("GET", self._env(key) + "/export", params={"format": "project"})["files"]
        return uv_envs.Export(key, files["pyproject.toml"], files["uv.lock"])

    def _page(self, query: PageQuery) -> uv_envs.OperationPage:
        page = self._call("GET", "/v1/operations", params=query._asdict())
        items = tuple(
            uv_envs.OperationRecord(**{k: v for k, v in item.items() if k in _RECORD_FIELDS})
            for item in page["items"]
        )
        return uv_envs.OperationPage(page["total"], page["limit"], page["offset"], items)

    def delete_operations(
        self, workflow_id: str, node_id: str | None = None
    ) -> uv_envs.DeletedOperations:
        """Delete the audit records of a workflow, or of one of its nodes."""
        params = {"workflow_id": workflow_id, "node_id": node_id}
        answer = self._call("DELETE", "/v1/operations", params=params)
        return uv_envs.DeletedOperations(
            answer["workflow_id"],
            answer["node_id"],
            answer["deleted_count"],
            tuple(answer["deleted_node_ids"]),
        )

    def watch(  # the contract's, plus the deprecated spelling of ``after``
        self, *, last_event_id: int | None = None, **filters: Unpack[EventFilters]
    ) -> Generator[uv_envs.StreamEvent]:
        """Follow the server's events live (SSE at ``/v1/events``) until closed.

        Takes the keywords of :meth:`RemoteEnvManager.watch` (``workflow_id``,
        ``node_id``, ``names``, ``operation_id``, ``after``).

        ``after`` resumes: the buffered events numbered after it come first
        (sent as ``Last-Event-ID``; ``last_event_id`` is its deprecated spelling).
        """
        if last_event_id is not None:
            message = "HttpEnvClient.watch(last_event_id=...) is deprecated; use after=..."
            warnings.warn(message, DeprecationWarning, stacklevel=2)
            filters["after"] = last_event_id
        yield from super().watch(**filters)

    def _follow(self, filters: EventFilters) -> Generator[uv_envs.StreamEvent]:
        after = filters.get("after")
        params: dict[str, str | list[str] | None] = {
            "workflow_id": filters.get("workflow_id"),
            "node_id": filters.get("node_id"),
            "names": list(filters.get("names", ())) or None,
            "operation_id": filters.get("operation_id"),
        }
        headers = {} if after is None else {"Last-Event-ID": str(after)}
        query = {k: v for k, v in params.items() if v is not None}
        # No read timeout: a quiet stream sends a comment every 15 s, and may wait longer.
        timeout = httpx.Timeout(self.http.timeout.connect, read=None)
        with self.http.stream(
            "GET", "/v1/events", params=query, headers=headers, timeout=timeout
        ) as response:
            if response.is_error:
                response.read()
                raise error_of(response)
            yield from decode(response.iter_lines())
