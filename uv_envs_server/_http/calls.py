"""One method per endpoint of the HTTP API, answering its JSON as dicts.

:class:`HttpCalls` is the wire-level half of
:class:`~uv_envs_server.HttpEnvClient`: the connection pool, the problem
bodies raised as core exceptions, and the endpoints as the API names them.
The client adds the :class:`~uv_envs_server.RemoteEnvManager` methods, which
answer ``uv_envs`` models, on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import httpx

import uv_envs
from uv_envs_server._http.v1.bodies import EMPTY_VERSION
from uv_envs_server._outcomes import core_error
from uv_envs_server._remote import Closing

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

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


def error_of(response: httpx.Response) -> Exception:
    """The exception a failed answer stands for: the core's, or :class:`HttpRemoteError`."""
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


def spec_body(
    packages: Iterable[str], python_version: str | None, requirements_text: str | None
) -> dict[str, Any]:
    """The spec fields of a create or ensure body."""
    return {
        "packages": list(packages),
        "python_version": python_version,
        "requirements_text": requirements_text,
    }


class HttpCalls(Closing):
    """The connection pool to a server and one method per endpoint; see ``HttpEnvClient``."""

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
            raise error_of(response)
        return response.json()

    @staticmethod
    def _env(workflow_id: str, node_id: str, version_id: str) -> str:
        parts = (workflow_id, node_id, version_id or EMPTY_VERSION)
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
            **spec_body(packages, python_version, requirements_text),
        }
        answer: dict[str, Any] = self._call("POST", "/v1/envs", json=body)
        return answer

    def ensure_env(
        self,
        workflow_id: str,
        node_id: str,
        version_id: str = "",
        packages: Iterable[str] = (),
        python_version: str | None = None,
    ) -> str:
        """Ensure the env (``PUT``) and return its ``python_path``, ready to run."""
        body = spec_body(packages, python_version, None)
        env = self._call("PUT", self._env(workflow_id, node_id, version_id), json=body)
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

    def _on_env(
        self, method: str, key: tuple[str, str, str], tail: str, body: object = None
    ) -> dict[str, Any]:
        answer: dict[str, Any] = self._call(method, self._env(*key) + tail, json=body)
        return answer

    def list_deps(self, workflow_id: str, node_id: str, version_id: str = "") -> dict[str, Any]:
        """``{"declared": [...], "locked": {name: version}}``."""
        return self._on_env("GET", (workflow_id, node_id, version_id), "/deps")

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
        return self._on_env("POST", (workflow_id, node_id, version_id), "/deps", body)

    def update_deps(
        self, workflow_id: str, node_id: str, version_id: str = "", *, packages: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Upgrade the named packages, or all of them when none is named."""
        body = {"packages": list(packages)}
        return self._on_env("PATCH", (workflow_id, node_id, version_id), "/deps", body)

    def remove_deps(
        self, workflow_id: str, node_id: str, version_id: str = "", *, packages: Iterable[str]
    ) -> dict[str, Any]:
        """Remove the named packages."""
        body = {"packages": list(packages)}
        return self._on_env("DELETE", (workflow_id, node_id, version_id), "/deps", body)

    def sync_env(self, workflow_id: str, node_id: str, version_id: str = "") -> dict[str, Any]:
        """Make the venv match uv.lock again."""
        return self._on_env("POST", (workflow_id, node_id, version_id), "/sync")

    def verify_env(self, workflow_id: str, node_id: str, version_id: str = "") -> dict[str, Any]:
        """``{"ok": bool, "problems": [...], "checked_files": n}``."""
        return self._on_env("POST", (workflow_id, node_id, version_id), "/verify")

    def export_env(
        self, workflow_id: str, node_id: str, version_id: str = "", *, fmt: str = "project"
    ) -> dict[str, str]:
        """The exported files by name: ``project``, ``requirements.txt`` or ``pylock.toml``."""
        path = self._env(workflow_id, node_id, version_id) + "/export"
        answer = self._call("GET", path, params={"format": fmt})
        files: dict[str, str] = answer["files"]
        return files

    # --- maintenance -----------------------------------------------------------------

    def cleanup(
        self, idle_hours: float | None = None, *, max_bytes: int | None = None
    ) -> dict[str, Any]:
        """Delete idle envs, then the least recently used over a disk budget."""
        body = {"idle_hours": idle_hours, "max_bytes": max_bytes}
        answer: dict[str, Any] = self._call("POST", "/v1/cleanup", json=body)
        return answer

    def status_page(self) -> str:
        """The HTML of the status page."""
        response = self.http.get("/")
        if response.is_error:
            raise error_of(response)
        return response.text
