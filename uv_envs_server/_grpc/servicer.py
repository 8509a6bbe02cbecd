"""The servicer: proto message -> core call -> proto message, and nothing more.

Every method runs on a worker thread of the server's pool, so a long
CreateEnv holds one worker while GetEnvStatus calls go on being answered by
the others. All provisioning logic (validation, locking, rollback) is the
core's; errors are translated in :mod:`uv_envs_server._grpc.errors`.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

import uv_envs
from uv_envs_server._limits import (
    DEFAULT_MAX_PACKAGES,
    DEFAULT_MIN_CLEANUP_IDLE_HOURS,
    DEFAULT_OPERATIONS_LIMIT,
    check_max_packages,
    check_min_cleanup_idle_hours,
    limit_packages,
)
from uv_envs_server._nodes import node_presence
from uv_envs_server._request_ids import following as _following

from . import wire
from .errors import abort
from .interceptors import add_trailing_metadata
from .proto import METHODS, SERVICE_NAME, pb

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

_R = TypeVar("_R")


RUN_CODE_MESSAGE = (
    "RunCode is not served by uv-envs: executing node code is Ray's job. "
    "Run it with the environment's interpreter, <env_path>/.venv/bin/python, "
    "which CreateEnv and GetEnvStatus return."
)

logger = logging.getLogger("uv_envs_server")


class EnvManagerServicer:
    """Serves ``envmanager.EnvManagerService`` from one :class:`uv_envs.EnvManager`.

    Every call runs inside :meth:`uv_envs.EnvManager.cancellable` with an
    event set when the RPC ends early (its deadline passes, or the client
    cancels or goes away): a create, add, update, remove or sync in progress
    then stops uv and rolls back, leaving the env as it was.

    Args:
        manager: the core manager every RPC is delegated to.
        max_packages: packages one request may name; more is INVALID_ARGUMENT.
        min_cleanup_idle_hours: a Cleanup asking for less idle time (0, or
            unset) deletes only envs idle this long; 0 lets ``idle_hours = 0``
            delete every env not in use, as an explicit opt-in.

    .. versionadded:: 0.1.0

    """

    def __init__(
        self,
        manager: uv_envs.EnvManager,
        *,
        max_packages: int = DEFAULT_MAX_PACKAGES,
        min_cleanup_idle_hours: float = DEFAULT_MIN_CLEANUP_IDLE_HOURS,
    ) -> None:
        check_max_packages(max_packages)
        check_min_cleanup_idle_hours(min_cleanup_idle_hours)
        self.manager = manager
        self.max_packages = max_packages
        self.min_cleanup_idle_hours = min_cleanup_idle_hours

    def _run(self, context: grpc.ServicerContext, call: Callable[[], _R]) -> _R:
        cancel = threading.Event()
        # Callbacks run when the RPC ends: early (deadline, cancel) or after we answered.
        if not context.add_callback(cancel.set):
            cancel.set()  # it has ended already
        try:
            # The request id names the call's operation in the event stream.
            with uv_envs.EnvManager.cancellable(cancel), _following():
                return call()
        except Exception as exc:  # noqa: BLE001 - every error becomes a status, never a traceback
            abort(context, exc)

    def _packages(self, packages: Sequence[str]) -> tuple[str, ...]:
        return limit_packages(packages, self.max_packages)

    # -- environments -----------------------------------------------------

    def GetEnvStatus(
        self, request: pb.GetEnvStatusRequest, context: grpc.ServicerContext
    ) -> pb.EnvStatusResponse:
        """Report an env's state; NOT_FOUND is a status here, not an error."""

        def call() -> pb.EnvStatusResponse:
            report = self.manager.status(wire.key(request))
            env = report.environment
            metadata = env.to_dict() if env else None
            nodes = node_presence(self.manager, report.key) if env else None
            if metadata is not None and nodes is not None:
                metadata["nodes"] = nodes  # which nodes of a served cluster hold it
            if report.status is uv_envs.EnvStatus.UNREADABLE:
                # No record to send: what there is to say about it instead.
                metadata = {
                    "key": {
                        "workflow_id": report.key.workflow_id,
                        "node_id": report.key.node_id,
                        "version_id": report.key.version_id,
                    },
                    "env_path": str(report.env_path),
                    "status": str(report.status),
                    "error": report.error,
                }
            return pb.EnvStatusResponse(
                **wire.ident(request),
                status=wire.WIRE_STATUS.get(report.status, str(report.status)),
                env_path=str(report.env_path),
                has_pyproject=report.has_pyproject,
                has_uv_lock=report.has_uv_lock,
                has_venv=report.has_venv,
                metadata_json=wire.to_json(metadata) if metadata is not None else "",
            )

        return self._run(context, call)

    def CreateEnv(
        self, request: pb.CreateEnvRequest, context: grpc.ServicerContext
    ) -> pb.CreateEnvResponse:
        """Ensure the env exists with this spec: safe to retry, fast when it already does."""

        def call() -> pb.CreateEnvResponse:
            # One core call: the env and its pyproject.toml are read under one lock,
            # so a concurrent delete cannot fail an ensure that succeeded.
            provisioned = self.manager.provision(
                wire.key(request),
                packages=self._packages(request.packages),
                requirements_text=wire.requirements_text(
                    request.requirements_file_content, request.requirements_file_name
                ),
                python=request.python_version or None,
                replace=True,
            )
            env = provisioned.environment
            return pb.CreateEnvResponse(
                **wire.ident(request),
                env_path=str(env.env_path),
                python_version=env.python_version,
                status=str(env.status),
                pyproject_toml=provisioned.pyproject_toml,
            )

        return self._run(context, call)

    def DeleteEnv(
        self, request: pb.DeleteEnvRequest, context: grpc.ServicerContext
    ) -> pb.DeleteEnvResponse:
        """Delete an env: NOT_FOUND (a success) if none; in use: DEFERRED, holders in metadata."""
        result = self._run(context, lambda: self.manager.delete(wire.key(request)))
        if result.status is uv_envs.DeleteStatus.DEFERRED or result.held_on:
            add_trailing_metadata(context, ((wire.HELD_BY_KEY, wire.held_by(result)),))
        return pb.DeleteEnvResponse(**wire.ident(request), status=result.status)

    def ExportEnv(
        self, request: pb.ExportEnvRequest, context: grpc.ServicerContext
    ) -> pb.ExportEnvResponse:
        """Return the env's pyproject.toml and uv.lock."""
        export = self._run(context, lambda: self.manager.export(wire.key(request)))
        return pb.ExportEnvResponse(
            **wire.ident(request), pyproject_toml=export.pyproject_toml, uv_lock=export.uv_lock
        )

    # -- dependencies -----------------------------------------------------

    def _operation(
        self,
        request: wire.Identified,
        context: grpc.ServicerContext,
        run: Callable[[uv_envs.EnvKey], uv_envs.OperationResult],
    ) -> dict[str, Any]:
        # A uv failure is an answer, not an error: status FAILED with uv's output.
        def call() -> dict[str, Any]:
            key = wire.key(request)
            try:
                result = run(key)
            except uv_envs.UvError as exc:
                return {
                    **wire.ident(request),
                    "status": uv_envs.OperationStatus.FAILED.value,
                    "stdout": exc.stdout,
                    "stderr": exc.stderr or str(exc),
                    "exit_code": -1 if exc.exit_code is None else exc.exit_code,
                }
            return {
                **wire.ident(request),
                "status": uv_envs.OperationStatus.SUCCESS.value,
                "stdout": result.stdout,
                "stderr": result.stderr,
                "exit_code": result.exit_code,
            }

        return self._run(context, call)

    def AddDeps(
        self, request: pb.DepsRequest, context: grpc.ServicerContext
    ) -> pb.DepsOperationResponse:
        """Add packages (and/or a requirements text) to the env."""

        def run(key: uv_envs.EnvKey) -> uv_envs.OperationResult:
            text = wire.requirements_text(
                request.requirements_file_content, request.requirements_file_name
            )
            return self.manager.add(key, self._packages(request.packages), requirements_text=text)

        return pb.DepsOperationResponse(**self._operation(request, context, run))

    def _named_packages(
        self,
        request: pb.DepsRequest,
        context: grpc.ServicerContext,
        rpc: str,
        change: Callable[[uv_envs.EnvKey, tuple[str, ...]], uv_envs.OperationResult],
    ) -> pb.DepsOperationResponse:
        # UpdateDeps and RemoveDeps take package names only, never a requirements file.
        def run(key: uv_envs.EnvKey) -> uv_envs.OperationResult:
            wire.no_requirements_file(request, rpc)
            return change(key, self._packages(request.packages))

        return pb.DepsOperationResponse(**self._operation(request, context, run))

    def UpdateDeps(
        self, request: pb.DepsRequest, context: grpc.ServicerContext
    ) -> pb.DepsOperationResponse:
        """Upgrade the named packages, or all of them when none is named."""
        return self._named_packages(request, context, "UpdateDeps", self.manager.update)

    def RemoveDeps(
        self, request: pb.DepsRequest, context: grpc.ServicerContext
    ) -> pb.DepsOperationResponse:
        """Remove the named packages."""
        return self._named_packages(request, context, "RemoveDeps", self.manager.remove)

    def SyncEnv(
        self, request: pb.SyncEnvRequest, context: grpc.ServicerContext
    ) -> pb.SyncEnvResponse:
        """Make the venv match uv.lock again."""
        return pb.SyncEnvResponse(**self._operation(request, context, self.manager.sync))

    def ListDeps(
        self, request: pb.ListDepsRequest, context: grpc.ServicerContext
    ) -> pb.ListDepsResponse:
        """List the declared dependencies and the versions uv.lock pins."""
        deps = self._run(context, lambda: self.manager.dependencies(wire.key(request)))
        return pb.ListDepsResponse(
            **wire.ident(request),
            dependencies=list(deps.declared),
            locked_versions=dict(deps.locked),
        )

    def RunCode(
        self, request: pb.RunCodeRequest, context: grpc.ServicerContext
    ) -> pb.RunCodeResponse:
        """Not served: executing node code is Ray's job."""
        del request
        context.abort(grpc.StatusCode.UNIMPLEMENTED, RUN_CODE_MESSAGE)

    # -- maintenance and audit --------------------------------------------

    def Cleanup(
        self, request: pb.CleanupRequest, context: grpc.ServicerContext
    ) -> pb.CleanupResponse:
        """Delete envs idle for ``idle_hours`` or more, never less than the server's minimum.

        ``idle_hours`` 0 (also what an unset field reads as) means the minimum
        (``--min-cleanup-idle-hours``, 1 hour by default), so one careless call
        cannot delete the envs a running batch uses.
        """

        def call() -> uv_envs.CleanupReport:
            # The core refuses a negative idle time too, but in seconds: say it in hours.
            if request.idle_hours < 0:
                raise uv_envs.InvalidInput(
                    f"idle_hours must be 0 or more, not {request.idle_hours}",
                    fields=("idle_hours",),
                )
            # The core raises an idle time under the floor to the floor.
            return self.manager.cleanup(
                idle_seconds=request.idle_hours * 3600.0,
                min_idle_seconds=self.min_cleanup_idle_hours * 3600.0,
            )

        report = self._run(context, call)
        return pb.CleanupResponse(
            deleted=[str(key) for key in report.deleted], checked_at_unix=int(report.checked_at)
        )

    def GetOperations(
        self, request: pb.GetOperationsRequest, context: grpc.ServicerContext
    ) -> pb.OperationListResponse:
        """Return a page of the audit trail, newest first; ``limit`` 0 means 50."""

        def call() -> uv_envs.OperationPage:
            if request.limit < 0 or request.offset < 0:
                msg = f"limit and offset must be >= 0, not {request.limit} and {request.offset}"
                raise uv_envs.InvalidInput(msg)
            return self.manager.operations(
                workflow_id=request.workflow_id or None,
                node_id=request.node_id or None,
                status=request.status or None,
                limit=request.limit or DEFAULT_OPERATIONS_LIMIT,
                offset=request.offset,
            )

        page = self._run(context, call)
        return pb.OperationListResponse(
            total=page.total,
            limit=page.limit,
            offset=page.offset,
            items=[wire.record(item) for item in page.items],
        )

    def DeleteOperations(
        self, request: pb.DeleteOperationsRequest, context: grpc.ServicerContext
    ) -> pb.DeleteOperationsResponse:
        """Delete the audit records of a workflow, or of one of its nodes."""

        def call() -> uv_envs.DeletedOperations:
            if not request.workflow_id:
                raise uv_envs.InvalidIdentifier("workflow_id must not be empty")
            return self.manager.delete_operations(request.workflow_id, request.node_id or None)

        deleted = self._run(context, call)
        return pb.DeleteOperationsResponse(
            workflow_id=deleted.workflow_id,
            deleted_count=deleted.deleted_count,
            node_id=deleted.node_id or "",
            deleted_node_ids=list(deleted.deleted_node_ids),
        )


def method_handlers(servicer: EnvManagerServicer) -> grpc.GenericRpcHandler:
    """Return the generic handler serving ``servicer`` under the contract's method names."""
    handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]] = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=request_cls.FromString,
            response_serializer=response_cls.SerializeToString,
        )
        for name, (request_cls, response_cls) in METHODS.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE_NAME, dict(handlers))
