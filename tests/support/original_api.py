"""A client of the original service's HTTP API, written from its contract in docs/http.md.

It talks as that service's own client does, so the tests show that client works
unchanged: form posts (``data=``, a list as repeated fields), an uploaded
``requirements_file`` when asked, ``version_id`` as a query parameter,
``httpx.HTTPStatusError`` for any error answer, and ``ensure_env`` as GET, then
on 404 a create, answering the interpreter's path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import httpx

#: The interpreter inside an env folder, as the original client builds it.
VENV_PYTHON = Path(".venv") / "bin" / "python"


class OriginalApiClient:
    """The routes of the original API, one method each; ``http`` is the underlying client."""

    def __init__(self, base_url: str, *, token: str | None = None, timeout: float = 300) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.http.close()

    @staticmethod
    def _env(workflow_id: str, node_id: str, suffix: str = "") -> str:
        return f"/envs/{workflow_id}/{node_id}" + (f"/{suffix}" if suffix else "")

    @staticmethod
    def _version(version_id: str | None) -> dict[str, str]:
        return {"version_id": version_id} if version_id else {}

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    @staticmethod
    def _upload(requirements: bytes | None) -> dict[str, tuple[str, bytes]] | None:
        return None if requirements is None else {"requirements_file": ("req.txt", requirements)}

    def create_env(
        self,
        workflow_id: str,
        node_id: str,
        *,
        version_id: str | None = None,
        python_version: str | None = None,
        packages: list[str] | str | None = None,
        requirements: bytes | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"workflow_id": workflow_id, "node_id": node_id}
        if version_id:
            data["version_id"] = version_id
        if python_version:
            data["python_version"] = python_version
        if packages:
            data["packages"] = packages
        return self._json(self.http.post("/envs", data=data, files=self._upload(requirements)))

    def get_status(
        self, workflow_id: str, node_id: str, version_id: str | None = None
    ) -> dict[str, Any]:
        url = self._env(workflow_id, node_id)
        return self._json(self.http.get(url, params=self._version(version_id)))

    def delete_env(
        self, workflow_id: str, node_id: str, version_id: str | None = None
    ) -> dict[str, Any]:
        url = self._env(workflow_id, node_id)
        return self._json(self.http.delete(url, params=self._version(version_id)))

    def _deps(
        self,
        method: str,
        workflow_id: str,
        node_id: str,
        packages: list[str] | None,
        version_id: str | None,
        requirements: bytes | None,
    ) -> dict[str, Any]:
        response = self.http.request(
            method,
            self._env(workflow_id, node_id, "deps"),
            data={"packages": packages} if packages else None,
            files=self._upload(requirements),
            params=self._version(version_id),
        )
        return self._json(response)

    def add_packages(
        self,
        workflow_id: str,
        node_id: str,
        packages: list[str] | None,
        version_id: str | None = None,
        requirements: bytes | None = None,
    ) -> dict[str, Any]:
        return self._deps("POST", workflow_id, node_id, packages, version_id, requirements)

    def update_packages(
        self,
        workflow_id: str,
        node_id: str,
        packages: list[str] | None,
        version_id: str | None = None,
        requirements: bytes | None = None,
    ) -> dict[str, Any]:
        return self._deps("PUT", workflow_id, node_id, packages, version_id, requirements)

    def remove_packages(
        self,
        workflow_id: str,
        node_id: str,
        packages: list[str] | None,
        version_id: str | None = None,
        requirements: bytes | None = None,
    ) -> dict[str, Any]:
        return self._deps("DELETE", workflow_id, node_id, packages, version_id, requirements)

    def list_packages(
        self, workflow_id: str, node_id: str, version_id: str | None = None
    ) -> dict[str, Any]:
        url = self._env(workflow_id, node_id, "deps")
        return self._json(self.http.get(url, params=self._version(version_id)))

    def sync_env(
        self, workflow_id: str, node_id: str, version_id: str | None = None
    ) -> dict[str, Any]:
        url = self._env(workflow_id, node_id, "sync")
        return self._json(self.http.post(url, params=self._version(version_id)))

    def export_env(
        self, workflow_id: str, node_id: str, version_id: str | None = None
    ) -> dict[str, Any]:
        url = self._env(workflow_id, node_id, "export")
        return self._json(self.http.get(url, params=self._version(version_id)))

    def run_code(self, workflow_id: str, node_id: str, code: str) -> dict[str, Any]:
        url = self._env(workflow_id, node_id, "run")
        return self._json(self.http.post(url, json={"code": code}))

    def cleanup(self, idle_hours: float) -> dict[str, Any]:
        return self._json(self.http.post("/envs/cleanup", json={"idle_hours": idle_hours}))

    def history(self, workflow_id: str, **filters: str | int) -> dict[str, Any]:
        return self._json(self.http.get(f"/envs-history/{workflow_id}", params=filters))

    def delete_history(self, workflow_id: str, node_id: str | None = None) -> dict[str, Any]:
        params = {"node_id": node_id} if node_id else {}
        return self._json(self.http.delete(f"/envs-history/{workflow_id}", params=params))

    def ensure_env(
        self,
        workflow_id: str,
        node_id: str,
        *,
        version_id: str | None = None,
        packages: list[str] | None = None,
    ) -> str:
        """The env's interpreter: its status when it exists, else (on 404) a create."""
        try:
            env_path = self.get_status(workflow_id, node_id, version_id)["env_path"]
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 404:
                raise
            created = self.create_env(
                workflow_id, node_id, version_id=version_id, packages=packages
            )
            env_path = created["env_path"]
        return str(Path(env_path) / VENV_PYTHON)
