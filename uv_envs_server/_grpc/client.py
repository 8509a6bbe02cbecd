"""A small typed client for ``envmanager.EnvManagerService``.

Failed calls raise the core exception the server named (``EnvironmentNotFound``,
``InvalidInput`` ...), so code written against the in-process API keeps its
``except`` clauses; what no core exception describes raises
:class:`~uv_envs_server.RemoteError`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import grpc

import uv_envs
from uv_envs_server._remote import EventFilters, PageQuery, RemoteClient

from . import events, wire
from .errors import RemoteError
from .proto import pb
from .rpcs import RpcCalls, ident

if TYPE_CHECKING:
    from collections.abc import Generator

__all__ = ["EnvManagerClient"]


#: The RPC of each change of the declared dependencies.
_DEPS_RPCS = {"add": "AddDeps", "update": "UpdateDeps", "remove": "RemoveDeps"}


def _encoded(requirements_text: str | None) -> bytes:
    return (requirements_text or "").encode("utf-8")


def _failed_uv(operation: str, stdout: str, stderr: str, exit_code: int) -> uv_envs.UvError:
    # AddDeps ... answer a uv failure as status FAILED: the UvError the core raised.
    first = (stderr.strip().splitlines() or [f"uv {operation} failed"])[0]
    return uv_envs.UvError(first, exit_code=exit_code, stdout=stdout, stderr=stderr)


class EnvManagerClient(RpcCalls, RemoteClient):
    """Calls a uv-envs server (or any ``envmanager.EnvManagerService``).

    Its methods are the :class:`~uv_envs_server.RemoteEnvManager` contract
    (``ensure``, ``get``, ``add`` ...), answering ``uv_envs`` models as
    :class:`~uv_envs_server.HttpEnvClient` does, plus :meth:`health`. Code
    that needs the proto's messages themselves (a status string, a field WTB
    reads) calls the generated ``EnvManagerServiceStub``, as WTB does.

    Args:
        target: ``host:port`` of the server.
        timeout: default deadline in seconds for every call; ``None`` waits as
            long as the call takes (a create can take minutes).
        channel: use this channel instead of opening one on ``target``.
        wait_for_ready: queue calls while the server is not reachable yet,
            instead of failing at once with UNAVAILABLE.
        root_certificates: PEM certificates to verify a TLS server with (its
            own self-signed certificate, or the CA that signed it); the channel
            then uses TLS.
        tls: use TLS with the system's root certificates.
        token: sent with every call as ``authorization: Bearer <token>``, for
            a server started with a token.

    Use it as a context manager, or call :meth:`close`.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0
       Implements :class:`~uv_envs_server.RemoteEnvManager`, and only it: the
       wire-level methods (``create_env``, ``get_env_status`` ...) are gone.

    """

    def _ensure(
        self, key: uv_envs.EnvKey, packages: list[str], text: str | None, python: str | None
    ) -> uv_envs.Environment:
        # CreateEnv answers a status and a path, not the env: it is read back (GetEnvStatus).
        request = pb.CreateEnvRequest(
            **ident(key),
            python_version=python or "",
            packages=packages,
            requirements_file_content=_encoded(text),
        )
        self._call("CreateEnv", request)
        try:
            return self.get(key)
        except uv_envs.EnvironmentNotFound as exc:
            msg = f"environment {key} was deleted right after its create"
            raise uv_envs.EnvironmentNotFound(msg) from exc

    def get(self, key: uv_envs.EnvKey) -> uv_envs.Environment:
        """The env (GetEnvStatus); raises ``EnvironmentNotFound`` when there is none."""
        response = self._keyed("GetEnvStatus", pb.EnvStatusResponse, key)
        if response.status == uv_envs.EnvStatus.NOT_FOUND or not response.metadata_json:
            raise uv_envs.EnvironmentNotFound(f"no environment {key}")
        data = json.loads(response.metadata_json)
        if data.get("status") == uv_envs.EnvStatus.UNREADABLE:
            # The server sends what it knows of an env whose record it cannot read.
            msg = f"environment {key} is unreadable: {data.get('error')}"
            raise uv_envs.EnvironmentUnreadable(msg)
        return uv_envs.Environment.from_dict(data)

    def delete(self, key: uv_envs.EnvKey, *, timeout: float | None = None) -> uv_envs.DeleteResult:
        """Delete the env (DeleteEnv); past ``timeout`` seconds, ``EnvironmentBusy``."""
        try:
            request = pb.DeleteEnvRequest(**ident(key))
            response, trailers = self._call_with_trailers("DeleteEnv", request, timeout)
        except RemoteError as exc:
            if exc.code is grpc.StatusCode.DEADLINE_EXCEEDED:
                msg = f"environment {key} was not deleted within {timeout} seconds"
                raise uv_envs.EnvironmentBusy(msg) from exc
            raise
        held = trailers.get(wire.HELD_BY_KEY, "")
        pids, leases = wire.holders(held)
        status = uv_envs.DeleteStatus(response.status)
        return uv_envs.DeleteResult(
            key, status, held_by=pids, leases=leases, held_on=wire.holding_nodes(held)
        )

    def dependencies(self, key: uv_envs.EnvKey) -> uv_envs.Dependencies:
        """Declared dependencies and locked versions (ListDeps)."""
        response = self._keyed("ListDeps", pb.ListDepsResponse, key)
        return uv_envs.Dependencies(
            key, tuple(response.dependencies), dict(response.locked_versions)
        )

    def _change(
        self, key: uv_envs.EnvKey, operation: str, packages: list[str], text: str | None = None
    ) -> uv_envs.OperationResult:
        # AddDeps ... answer uv's output, not the env: it is read back after a success.
        response: pb.DepsOperationResponse | pb.SyncEnvResponse
        if operation == "sync":
            response = self._keyed("SyncEnv", pb.SyncEnvResponse, key)
        else:
            request = pb.DepsRequest(
                **ident(key), packages=packages, requirements_file_content=_encoded(text)
            )
            response = self._call(_DEPS_RPCS[operation], request)
        if response.status != uv_envs.OperationStatus.SUCCESS:
            raise _failed_uv(operation, response.stdout, response.stderr, response.exit_code)
        return uv_envs.OperationResult(
            self.get(key),
            operation,
            stdout=response.stdout,
            stderr=response.stderr,
            exit_code=response.exit_code,
        )

    def export(self, key: uv_envs.EnvKey) -> uv_envs.Export:
        """The env's ``pyproject.toml`` and ``uv.lock`` (ExportEnv)."""
        response = self._keyed("ExportEnv", pb.ExportEnvResponse, key)
        return uv_envs.Export(key, response.pyproject_toml, response.uv_lock)

    def _page(self, query: PageQuery) -> uv_envs.OperationPage:
        request = pb.GetOperationsRequest(
            workflow_id=query.workflow_id or "",
            node_id=query.node_id or "",
            status=query.status or "",
            limit=query.limit,
            offset=query.offset,
        )
        page: pb.OperationListResponse = self._call("GetOperations", request)
        items = tuple(wire.record_of(item) for item in page.items)
        return uv_envs.OperationPage(page.total, page.limit, page.offset, items)

    def delete_operations(
        self, workflow_id: str, node_id: str | None = None, *, timeout: float | None = None
    ) -> uv_envs.DeletedOperations:
        """Delete a workflow's (or one node's) audit records (DeleteOperations)."""
        request = pb.DeleteOperationsRequest(workflow_id=workflow_id, node_id=node_id or "")
        response: pb.DeleteOperationsResponse = self._call("DeleteOperations", request, timeout)
        return uv_envs.DeletedOperations(
            response.workflow_id,
            response.node_id,
            response.deleted_count,
            tuple(response.deleted_node_ids),
        )

    def _follow(self, filters: EventFilters) -> Generator[uv_envs.StreamEvent]:
        # uvenvs.v1.Events/Watch (docs/grpc.md); ``after`` is the request's after_sequence.
        request = events.watch_request(
            filters.get("workflow_id"),
            filters.get("node_id"),
            filters.get("names", ()),
            filters.get("operation_id"),
            filters.get("after"),
        )
        return events.watch(self._channel, request, self._metadata, self.wait_for_ready)
