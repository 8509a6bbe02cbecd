"""A Python client of the HTTP API, on httpx: every operation, and ``ensure_env``.

Answers are the API's JSON as dicts. A problem body is raised as the core
exception it names (``except uv_envs.EnvironmentNotFound`` works against the
local API, the gRPC client and this one alike); a failure no core class
describes is an :class:`HttpRemoteError`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, Self
from urllib.parse import quote

import httpx

import uv_envs
from uv_envs_server._http.v1.bodies import EMPTY_VERSION
from uv_envs_server._outcomes import core_error

from .sse import decode

if TYPE_CHECKING:
    from collections.abc import Generator, Iterable, Mapping
    from types import TracebackType

#: Seconds a call may take by default; a create installs packages, so this is generous.
DEFAULT_TIMEOUT: Final = 600.0

_FALLBACK: Final[Mapping[int, type[uv_envs.UvEnvsError]]] = {
    404: uv_envs.EnvironmentNotFound,
    409: uv_envs.EnvironmentAlreadyExists,
    422: uv_envs.InvalidInput,
    423: uv_envs.EnvironmentBusy,
}


class HttpRemoteError(uv_envs.UvEnvsError, RuntimeError):
    """The server answered an error no core exception describes (401, 500 ...).

    ``status_code`` is the HTTP status, ``problem`` the problem body (if any).

    .. versionadded:: 0.1.0
    """

    def __init__(self, message: str, status_code: int, problem: Mapping[str, Any]) -> None:
        self.status_code = status_code
        self.problem = dict(problem)
        super().__init__(message)


def _error(response: httpx.Response) -> Exception:
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    detail = str(problem.get("detail") or response.reason_phrase or response.status_code)
    name = problem.get("error_class")
    cls = getattr(uv_envs, name, None) if isinstance(name, str) else None
    if isinstance(cls, type) and issubclass(cls, uv_envs.UvError):
        exit_code = problem.get("exit_code")
        return cls(
            detail.split("\n", 1)[0],
            exit_code=exit_code if isinstance(exit_code, int) else None,
            stdout=str(problem.get("stdout") or ""),
            stderr=str(problem.get("stderr") or ""),
        )
    finished = problem.get("finished")
    named = core_error(name, detail, finished=finished if isinstance(finished, str) else None)
    if named is not None:
        return named
    fallback = _FALLBACK.get(response.status_code)
    if fallback is not None:
        return fallback(detail)
    return HttpRemoteError(f"HTTP {response.status_code}: {detail}", response.status_code, problem)


def _version(version_id: str) -> str:
    return version_id or EMPTY_VERSION


class HttpEnvClient:
    """Talks to a uv-envs HTTP server (``uv-envs-server --http-port N``).

    Args:
        base_url: for example ``http://127.0.0.1:8080``.
        token: the server's bearer token, if it requires one.
        timeout: seconds per call (default 600: creates install packages).
        verify: TLS verification, as httpx takes it (True, a CA bundle path, an SSLContext).
        client: use this httpx client instead of opening one.

    Usable as a context manager; :meth:`close` closes the connection pool.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        *,
        token: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        verify: Any = True,  # noqa: ANN401 - httpx's own union
        client: httpx.Client | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        self.http = (
            client
            if client is not None
            else httpx.Client(base_url=base_url, headers=headers, timeout=timeout, verify=verify)
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, Any] | None = None,
        timeout: float | object | None = httpx.USE_CLIENT_DEFAULT,
    ) -> Any:  # noqa: ANN401 - the API's JSON
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self.http.request(
            method,
            path,
            json=json,
            params=query,
            timeout=timeout,  # type: ignore[arg-type]  # httpx's sentinel
        )
        if response.is_error:
            raise _error(response)
        return response.json()

    @staticmethod
    def _env(workflow_id: str, node_id: str, version_id: str) -> str:
        parts = (workflow_id, node_id, _version(version_id))
        return "/v1/envs/" + "/".join(quote(part, safe="") for part in parts)

    # --- environments ----------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """``{"status": "SERVING"}`` when the server answers."""
        answer: dict[str, Any] = self._call("GET", "/v1/health")
        return answer

    def create_env(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Iterable[str] = (),
        python_version: str | None = None,
        requirements_text: str | None = None,
    ) -> dict[str, Any]:
        """Create an env (an identical one is returned; another spec raises AlreadyExists)."""
        body = {
            "workflow_id": workflow_id,
            "node_id": node_id,
            "version_id": version_id,
            "packages": list(packages),
            "python_version": python_version,
            "requirements_text": requirements_text,
        }
        answer: dict[str, Any] = self._call("POST", "/v1/envs", json=body)
        return answer

    def ensure(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Iterable[str] = (),
        python_version: str | None = None,
        requirements_text: str | None = None,
    ) -> dict[str, Any]:
        """Make the env match the spec (create it or move it to a new generation)."""
        body = {
            "packages": list(packages),
            "python_version": python_version,
            "requirements_text": requirements_text,
        }
        path = self._env(workflow_id, node_id, version_id)
        answer: dict[str, Any] = self._call("PUT", path, json=body)
        return answer

    def ensure_env(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        packages: Iterable[str] = (),
        python_version: str | None = None,
    ) -> str:
        """Ensure the env and return its ``python_path``, ready to run."""
        env = self.ensure(
            workflow_id, node_id, version_id, packages=packages, python_version=python_version
        )
        return str(env["python_path"])

    def get_env(self, workflow_id: str, node_id: str, version_id: str = "") -> dict[str, Any]:
        """The env's status, files and the env; raises EnvironmentNotFound when there is none."""
        answer: dict[str, Any] = self._call("GET", self._env(workflow_id, node_id, version_id))
        return answer

    def list_envs(
        self, workflow_id: str | None = None, node_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Every env, optionally of one workflow (and node)."""
        answer = self._call(
            "GET", "/v1/envs", params={"workflow_id": workflow_id, "node_id": node_id}
        )
        envs: list[dict[str, Any]] = answer["environments"]
        return envs

    def delete_env(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        force: bool = False,
        timeout: float | object | None = httpx.USE_CLIENT_DEFAULT,
    ) -> str:
        """Delete the env: ``"DELETED"``, or ``"NOT_FOUND"`` when there was none."""
        answer = self._call(
            "DELETE",
            self._env(workflow_id, node_id, version_id),
            params={"force": "true" if force else None},
            timeout=timeout,
        )
        return str(answer["status"])

    # --- dependencies ----------------------------------------------------------------

    def list_deps(self, workflow_id: str, node_id: str, version_id: str = "") -> dict[str, Any]:
        """``{"declared": [...], "locked": {name: version}}``."""
        path = self._env(workflow_id, node_id, version_id) + "/deps"
        answer: dict[str, Any] = self._call("GET", path)
        return answer

    def _deps(
        self, method: str, key: tuple[str, str, str], body: Mapping[str, Any]
    ) -> dict[str, Any]:
        answer: dict[str, Any] = self._call(method, self._env(*key) + "/deps", json=dict(body))
        return answer

    def add_deps(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        *,
        packages: Iterable[str] = (),
        requirements_text: str | None = None,
    ) -> dict[str, Any]:
        """Add packages; uv's failure raises UvError with its stderr."""
        body = {"packages": list(packages), "requirements_text": requirements_text}
        return self._deps("POST", (workflow_id, node_id, version_id), body)

    def update_deps(
        self, workflow_id: str, node_id: str, version_id: str = "", *, packages: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Upgrade the named packages, or all of them when none is named."""
        return self._deps("PATCH", (workflow_id, node_id, version_id), {"packages": list(packages)})

    def remove_deps(
        self, workflow_id: str, node_id: str, version_id: str = "", *, packages: Iterable[str]
    ) -> dict[str, Any]:
        """Remove the named packages."""
        body = {"packages": list(packages)}
        return self._deps("DELETE", (workflow_id, node_id, version_id), body)

    def sync_env(self, workflow_id: str, node_id: str, version_id: str = "") -> dict[str, Any]:
        """Make the venv match uv.lock again."""
        path = self._env(workflow_id, node_id, version_id) + "/sync"
        answer: dict[str, Any] = self._call("POST", path)
        return answer

    def verify_env(self, workflow_id: str, node_id: str, version_id: str = "") -> dict[str, Any]:
        """``{"ok": bool, "problems": [...], "checked_files": n}``."""
        path = self._env(workflow_id, node_id, version_id) + "/verify"
        answer: dict[str, Any] = self._call("POST", path)
        return answer

    def export_env(
        self, workflow_id: str, node_id: str, version_id: str = "", *, fmt: str = "project"
    ) -> dict[str, str]:
        """The exported files by name: ``project``, ``requirements.txt`` or ``pylock.toml``."""
        path = self._env(workflow_id, node_id, version_id) + "/export"
        answer = self._call("GET", path, params={"format": fmt})
        files: dict[str, str] = answer["files"]
        return files

    # --- maintenance and audit -------------------------------------------------------

    def cleanup(
        self, idle_hours: float | None = None, *, max_bytes: int | None = None
    ) -> dict[str, Any]:
        """Delete idle envs, then the least recently used over a disk budget."""
        body = {"idle_hours": idle_hours, "max_bytes": max_bytes}
        answer: dict[str, Any] = self._call("POST", "/v1/cleanup", json=body)
        return answer

    def operations(
        self,
        workflow_id: str | None = None,
        node_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> dict[str, Any]:
        """A page of the audit trail, newest first: ``{"total", "limit", "offset", "items"}``."""
        params = {
            "workflow_id": workflow_id,
            "node_id": node_id,
            "status": status,
            "limit": limit,
            "offset": offset,
        }
        answer: dict[str, Any] = self._call("GET", "/v1/operations", params=params)
        return answer

    def delete_operations(self, workflow_id: str, node_id: str | None = None) -> dict[str, Any]:
        """Delete the audit records of a workflow, or of one of its nodes."""
        params = {"workflow_id": workflow_id, "node_id": node_id}
        answer: dict[str, Any] = self._call("DELETE", "/v1/operations", params=params)
        return answer

    def watch(
        self,
        *,
        workflow_id: str | None = None,
        node_id: str | None = None,
        names: Iterable[str] = (),
        operation_id: str | None = None,
        last_event_id: int | None = None,
    ) -> Generator[uv_envs.StreamEvent]:
        """Follow the server's events live (SSE at ``/v1/events``) until closed.

        ``last_event_id`` resumes: the buffered events numbered after it come first.
        """
        params = {
            "workflow_id": workflow_id,
            "node_id": node_id,
            "names": list(names) or None,
            "operation_id": operation_id,
        }
        headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
        query = {k: v for k, v in params.items() if v is not None}
        # No read timeout: a quiet stream sends a comment every 15 s, and may wait longer.
        timeout = httpx.Timeout(self.http.timeout.connect, read=None)
        with self.http.stream(
            "GET", "/v1/events", params=query, headers=headers, timeout=timeout
        ) as response:
            if response.is_error:
                response.read()
                raise _error(response)
            yield from decode(response.iter_lines())

    def status_page(self) -> str:
        """The HTML of the status page."""
        response = self.http.get("/")
        if response.is_error:
            raise _error(response)
        return response.text
