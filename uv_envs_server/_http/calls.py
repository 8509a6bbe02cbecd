"""The connection pool to the HTTP API and its calls, problem bodies raised as core errors.

:class:`HttpCalls` is the wire half of :class:`~uv_envs_server.HttpEnvClient`:
it sends one request and answers the JSON, or raises the problem body as the
core exception it names. The client builds the requests and answers
``uv_envs`` models; code that wants the JSON itself uses the client's
``http`` (an ``httpx.Client`` on the server's base URL).
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
    """The connection pool to a server and a call of any endpoint; see ``HttpEnvClient``."""

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
    def _env(key: uv_envs.EnvKey) -> str:
        parts = (key.workflow_id, key.node_id, key.version_id or EMPTY_VERSION)
        return "/v1/envs/" + "/".join(quote(part, safe="") for part in parts)
